// Port and socket waits read the kernel's socket tables (/proc/net/tcp{,6}, /proc/net/unix), so they run the same
// commands on any Linux: here through the host's own /bin/sh against real sockets that this test opens and closes
// (a guest's kernel has the same tables; the VM path is the same ShellOps).
import { execa } from 'execa';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TimeoutError } from '../errors/fleetlab-error.ts';
import type { CommandRunner } from '../protocols/shell.ts';
import { ShellOps } from './shell-ops.ts';

/** The host's /bin/sh as a machine's command runner. */
const host: CommandRunner = {
  machineName: 'host',
  async execute(command) {
    const t0 = Date.now();
    const r = await execa('sh', ['-c', command], { reject: false, encoding: 'buffer' });
    return { exitCode: r.exitCode ?? -1, stdout: Buffer.from(r.stdout).toString(), stderr: Buffer.from(r.stderr).toString(), stdoutBytes: Buffer.from(r.stdout), durationMs: Date.now() - t0 };
  },
};
const shell = new ShellOps(host);
const listen = (server: Server, port = 0) => new Promise<number>((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

describe('port and unix socket waits', () => {
  it('waitForOpenPort sees a listener come up, waitForClosedPort sees it go', async () => {
    const server = createServer();
    const port = await listen(server);
    await shell.waitForOpenPort(port, { timeout: '5s' });
    await expect(shell.waitForClosedPort(port, { timeout: '1s' })).rejects.toThrow(TimeoutError);
    const closing = shell.waitForClosedPort(port, { timeout: '10s' });
    setTimeout(() => server.close(), 700);
    await closing;
    await expect(shell.waitForOpenPort(port, { timeout: '1s' })).rejects.toThrow(/TCP port \d+ to be listened on/);
  });

  it('waitForUnixSocket tells a listening stream socket and a bound datagram socket apart, by path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-sock-'));
    try {
      const stream = join(dir, 'app.sock');
      const dgram = join(dir, 'log.sock');
      const waiting = shell.waitForUnixSocket(stream, { timeout: '10s' });
      const server = createServer();
      setTimeout(() => server.listen(stream), 700);
      await waiting;
      await expect(shell.waitForUnixSocket(stream, { datagram: true, timeout: '1s' })).rejects.toThrow(/a datagram unix socket at .*app\.sock/);
      await expect(shell.waitForUnixSocket(join(dir, 'app'), { timeout: '1s' })).rejects.toThrow(TimeoutError);
      // A bound datagram socket (as syslog's /dev/log): Node has no unix datagram sockets; socat (setup installs it) binds one.
      const sock = execa('socat', ['-u', `UNIX-RECV:${dgram}`, '-'], { timeout: 30_000 });
      await shell.waitForUnixSocket(dgram, { datagram: true, timeout: '10s' });
      await expect(shell.waitForUnixSocket(dgram, { timeout: '1s' })).rejects.toThrow(/a listening stream unix socket/);
      sock.kill();
      await sock.catch(() => undefined);
      await new Promise<void>((r) => server.close(() => r()));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
