// The console log keeps the guest's bytes: any byte value, partial lines written out for quiet, notes apart.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsoleLog, decodeConsoleLog } from './console-log.ts';

describe('console log', () => {
  it('decodes back to exactly the bytes pushed, across partial lines flushed for quiet and notes in between', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'fleetlab-consolelog-')), 'm.log');
    const log = new ConsoleLog(path);
    const pushed: Buffer[] = [];
    const push = (b: Buffer) => {
      pushed.push(b);
      log.push(b);
    };
    push(Buffer.from('boot line one\r\nhalf a li'));
    await new Promise((r) => setTimeout(r, 300)); // the partial line is written out
    log.note('a note from fleetlab, not guest output');
    push(Buffer.from('ne, finished\n'));
    const binary = randomBytes(64 * 1024);
    push(binary);
    push(Buffer.from('\nlast line\n'));
    await log.close();
    const file = await readFile(path);
    expect(decodeConsoleLog(file).equals(Buffer.concat(pushed))).toBe(true);
    // Raw, not re-encoded: the file is the bytes plus one small record header a line.
    expect(file.length).toBeLessThan(Buffer.concat(pushed).length * 1.2);
    const text = file.toString('latin1');
    expect(text).toMatch(/^\[\s+\d+\.\d{3}\] boot line one\r$/m);
    expect(text).toMatch(/^\[\s+\d+\.\d{3}\]~half a li$/m);
    expect(text).toMatch(/^\[\s+\d+\.\d{3}\]\*--- fleetlab: a note from fleetlab, not guest output$/m);
  });

  it('a line written out in pieces reaches listeners and lastLines whole, with the pieces before it', async () => {
    const log = new ConsoleLog(join(await mkdtemp(join(tmpdir(), 'fleetlab-consolelog-')), 'm.log'));
    const lines: string[] = [];
    log.onLine((l) => lines.push(l));
    log.push('[    4.2] An error occurred in stage 1 of');
    log.note('a note splits the record'); // as a slow UART's pause and a note from fleetlab did on the Pi
    log.push(' the boot process, which must mount\r\nnext\n');
    expect(lines).toEqual(['[    4.2] An error occurred in stage 1 of', '[    4.2] An error occurred in stage 1 of the boot process, which must mount', 'next']);
    expect(log.lastLines(5)).toEqual(['[    4.2] An error occurred in stage 1 of the boot process, which must mount', 'next']);
    await log.close();
  });

  it('lastLines shows printable text, notes left out', async () => {
    const log = new ConsoleLog(join(await mkdtemp(join(tmpdir(), 'fleetlab-consolelog-')), 'm.log'));
    log.push('one\n');
    log.note('not this');
    log.push(Buffer.from([0x74, 0x77, 0x6f, 0x1b, 0x5b, 0x6d, 0x0a]));
    expect(log.lastLines(5)).toEqual(['one', 'two\\x1b[m']);
    await log.close();
  });
});
