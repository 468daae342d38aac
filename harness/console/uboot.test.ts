// The U-Boot console driver against a scripted boot loader on the other end of a Unix socket: what U-Boot 2023.01
// prints (its countdown, its echo, `$?`, the extlinux menu; copied from a virtual board's console log), so the
// driver's parsing is checked without a boot. scenarios/boot-loader-recovery.ts drives the real U-Boot of a VM and
// of the virtual lab's boards.
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import { ConsoleLog } from './console-log.ts';
import { StreamConsole } from './stream-console.ts';
import { UBootConsole } from './uboot.ts';

const dir = mkdtempSync(join(tmpdir(), 'fleetlab-uboot-'));
let n = 0;

/** A StreamConsole on one end of a Unix socket, and the socket's other end. */
async function consolePair(): Promise<{ con: StreamConsole; peer: Socket }> {
  const path = join(dir, `s${n++}.sock`);
  const peer = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      server.close();
      resolve(s);
    }).listen(path);
  });
  const client = createConnection({ path });
  await new Promise((r) => client.once('connect', r));
  const con = new StreamConsole('serial0', 'board', new ConsoleLog(join(dir, `s${n}.log`)));
  con.attach(client);
  return { con, peer: await peer };
}

/** A boot loader that answers like U-Boot: countdown, prompt on a key, commands with $?, `boot` shows the menu. */
async function fakeUBoot(opts: { menu?: string[] } = {}) {
  const { con, peer: toHost } = await consolePair();
  const fromHost = toHost;
  const typed: string[] = [];
  let line = '';
  let atPrompt = false;
  let inMenu = false;
  fromHost.on('data', (d: Buffer) => {
    for (const ch of d.toString()) {
      if (!atPrompt && !inMenu) {
        atPrompt = true;
        toHost.write(' 0 \r\n=> ');
        continue;
      }
      if (ch !== '\n') {
        line += ch;
        toHost.write(ch);
        continue;
      }
      toHost.write('\r\n');
      const cmd = line;
      line = '';
      typed.push(cmd);
      if (inMenu) {
        toHost.write(`${cmd}\r\n${opts.menu![Number(cmd) - 1]}\r\nRetrieving file: /boot/extlinux/../nixos/x-Image\r\n`);
        inMenu = false;
        atPrompt = false;
        continue;
      }
      const [first, ...rest] = cmd.split('; echo ');
      const tag = rest.join('; echo ').replace(/=\$\?$/, '');
      if (first === 'boot') {
        toHost.write(`Scanning virtio 0:2...\r\nFound /boot/extlinux/extlinux.conf\r\n------------------------------------------------------------\r\n${opts.menu!.join('\r\n')}\r\nEnter choice: `);
        inMenu = true;
        continue;
      }
      const status = first === 'version' ? 0 : first!.startsWith('printenv missing') ? 1 : 0;
      if (first === 'version') toHost.write('U-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026 - 08:38:07 +0000)\r\n\r\naarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0\r\n');
      if (status) toHost.write('## Error: "missing" not defined\r\n');
      toHost.write(`${tag}=${status}\r\n=> `);
    }
  });
  return { con, toHost, typed };
}

describe('UBootConsole', () => {
  it('interrupts the countdown, runs commands with their output and status, and boots the menu entry that matches', async () => {
    const { con, toHost, typed } = await fakeUBoot({ menu: ['1:\tNixOS - Default', '2:\tNixOS - Configuration 2 (2026-01-02 - broken)', '3:\tNixOS - Configuration 1 (2026-01-01 - good)'] });
    const u = new UBootConsole(con, 'board');
    const interrupted = u.interrupt({ timeout: 5000 });
    toHost.write('\r\nU-Boot 2023.01\r\nHit any key to stop autoboot:  2 ');
    await interrupted;
    expect(await u.run('version', { timeout: 5000 })).toEqual({ command: 'version', output: 'U-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026 - 08:38:07 +0000)\n\naarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0', exitCode: 0 });
    expect(await u.run('setenv x 1', { timeout: 5000 })).toEqual({ command: 'setenv x 1', output: '', exitCode: 0 });
    const missing = u.succeed('printenv missing', { timeout: 5000 });
    await expect(missing).rejects.toThrow(TestFailure);
    await expect(missing).rejects.toThrow(/failed with status 1:\n {2}=> printenv missing\n {2}\| ## Error: "missing" not defined/);
    expect(await u.bootMenuEntry(/Configuration 1 /, { timeout: 5000 })).toEqual({ choice: 3, title: 'NixOS - Configuration 1 (2026-01-01 - good)' });
    await expect.poll(() => typed.at(-1)).toBe('3');
  });

  it('names what the menu offers when no entry matches, and times out naming the prompt it waited for', async () => {
    const { con, toHost } = await fakeUBoot({ menu: ['1:\tNixOS - Default', '2:\tNixOS - Configuration 1 (good)'] });
    const u = new UBootConsole(con, 'board');
    const i = u.interrupt({ timeout: 5000 });
    toHost.write('Hit any key to stop autoboot:  2 ');
    await i;
    await expect(u.bootMenuEntry('Configuration 7', { timeout: 5000 })).rejects.toThrow(/has no entry matching Configuration 7; it offers:\n {2}1: NixOS - Default\n {2}2: NixOS - Configuration 1 \(good\)/);
    const silent = new UBootConsole((await consolePair()).con, 'board');
    const err = await silent.interrupt({ timeout: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/autoboot countdown/);
  });
});
