// SshSession against a server that answers an exec at once: its reply, output, exit status and close leave in one
// burst, as a busy guest's dropbear sends them for a short command, so they arrive in one read. The server is the ssh2
// library's own (in this process), chosen because it writes that burst every time; the real dropbear is ssh.test.ts's.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { deadlineFrom } from '../time/deadline.ts';
import { SshSession } from './ssh-session.ts';

const { Server, utils } = ssh2;
let server: InstanceType<typeof Server>;
let port: number;

beforeAll(async () => {
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    client.on('session', (accept) => {
      accept().on('exec', (acceptExec, _reject, info) => {
        const stream = acceptExec();
        // All in the same tick as the exec's reply.
        const code = Number(/^exit (\d+)$/.exec(info.command)?.[1] ?? 0);
        stream.write(`ran ${info.command}\n`);
        stream.stderr.write('to stderr\n');
        stream.exit(code);
        stream.end();
      });
    });
    // Server connections have setNoDelay as clients do; @types/ssh2 does not list it.
    client.on('ready', () => (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true));
    client.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(() => {
  server?.close();
});

describe('SshSession', () => {
  it('hears the exit status of a command whose whole answer comes in one read', async () => {
    const key = Buffer.from(utils.generateKeyPairSync('ed25519').private);
    const session = await SshSession.connect({ machine: 'burst', host: '127.0.0.1', port, user: 'root', privateKey: key }, { deadline: deadlineFrom({ timeout: 10_000 }, 10_000, 'connect') });
    try {
      for (let i = 0; i < 20; i++) {
        const r = await session.execute(`exit ${i % 3}`, { timeout: 5000 });
        expect(r.exitCode).toBe(i % 3);
        expect(r.stdout).toBe(`ran exit ${i % 3}\n`);
        expect(r.stderr).toBe('to stderr\n');
      }
    } finally {
      session.close();
    }
  });
});
