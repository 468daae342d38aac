// --pause-on-failure keeps a failed case's machine running and `fleetlab console` attaches to its serial console.
import { execa } from 'execa';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesMatching } from '../testing/processes.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');

function waitFor(stream: NodeJS.ReadableStream, re: RegExp, ms: number): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`did not see ${re} within ${ms} ms; saw:\n${seen}`)), ms);
    stream.on('data', (d: Buffer) => {
      seen += d.toString();
      if (re.test(seen)) {
        clearTimeout(t);
        resolve(seen);
      }
    });
  });
}

describe('--pause-on-failure', () => {
  it('keeps the machine, serves its console to `fleetlab console`, and stops it on Ctrl-C', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-pause-'));
    const run = execa(process.execPath, [cli, 'run', join(root, 'harness/runner/fixtures/pause.ts'), '--pause-on-failure', '--output', out], { cwd: root, reject: false, env: { CI: '1' } });
    const printed = await waitFor(run.stdout!, /Press Ctrl-C/, 120_000);
    expect(printed).toContain('paused: paused (x86_64-direct) keeps running. Attach: fleetlab console paused');
    expect(processesMatching('process=fleetlab-paused').length).toBe(1);

    const attach = execa(process.execPath, [cli, 'console', 'paused', '--report', out], { cwd: root, reject: false });
    const attached = waitFor(attach.stdout!, /paused login:/, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    attach.stdin!.write('\n');
    await attached;
    attach.stdin!.write(Buffer.from([0x1d]));
    expect((await attach).exitCode).toBe(0);

    run.kill('SIGINT');
    const r = await run;
    expect(r.exitCode).toBe(1);
    expect(processesMatching('process=fleetlab-paused')).toEqual([]);
  }, 200_000);
});
