// A paused case's or `fleetlab up`'s machines made reachable from other terminals: each serial console on a Unix
// socket (`fleetlab console`), and the SSH forward where the machine has one (`fleetlab ssh`).
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Machine } from '../protocols/machine.ts';
import type { SessionMachine } from './sessions.ts';

/** Serves each machine's console under `dir`/consoles; close() stops serving (the machines keep running). */
export function serveMachines(machines: Machine[], dir: string): { machines: SessionMachine[]; close(): void } {
  const servers: Server[] = [];
  const out: SessionMachine[] = [];
  for (const m of machines) {
    if (m.state !== 'running') {
      out.push({ name: m.name, profile: m.profile.name, console: '' });
      continue;
    }
    const path = join(dir, 'consoles', `${m.name}.sock`);
    const console = m.console();
    const server = createServer((sock) => {
      const unsubscribe = m.log.onLine((line) => sock.write(`${line}\r\n`));
      sock.on('data', (d) => void console.write(d).catch(() => sock.end()));
      sock.on('error', () => undefined);
      sock.on('close', unsubscribe);
    });
    server.listen(path);
    servers.push(server);
    const ssh = sshOf(m);
    out.push({ name: m.name, profile: m.profile.name, console: path, ...(ssh ? { ssh } : {}) });
  }
  return { machines: out, close: () => servers.forEach((s) => s.close()) };
}

/** Where an SSH client reaches the machine, when it has an SSH forward (ssh: true, fleetlab up). */
function sshOf(m: Machine): SessionMachine['ssh'] {
  try {
    const e = m.sshEndpoint();
    return { host: e.host, port: e.port, user: e.user, ...(e.privateKey ? { privateKey: e.privateKey } : {}), ...(e.hostKey ? { hostKey: e.hostKey } : {}) };
  } catch {
    return undefined;
  }
}

/** The lines a pause or `fleetlab up` prints for each machine: how to reach its console and SSH. */
export function accessLines(machines: SessionMachine[]): string[] {
  return machines.map((m) => `  ${m.name} (${m.profile}): ${m.console ? `fleetlab console ${m.name}` : 'not running'}${m.ssh ? `   fleetlab ssh ${m.name}   (ssh -p ${m.ssh.port} ${m.ssh.user}@${m.ssh.host})` : ''}`);
}
