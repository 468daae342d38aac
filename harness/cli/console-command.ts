// `fleetlab console <machine>`: attaches this terminal to the serial console of a machine of a paused run or a
// `fleetlab up` (its Unix socket in the session's folder).
import { createConnection } from 'node:net';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { findMachine } from '../debug/sessions.ts';

/** Connects stdin/stdout to the machine's console socket; Ctrl-] detaches. */
export async function consoleCommand(machine: string, session?: string): Promise<number> {
  const { machine: m, session: s } = findMachine(machine, 'fleetlab console', session);
  if (!m.console) throw new ConfigurationError(`fleetlab console: ${machine} (${s.id}) is not running`, { details: { machine } });
  const sock = createConnection({ path: m.console });
  process.stderr.write(`attached to ${machine} (Ctrl-] to detach)\n`);
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on('data', (d: Buffer) => {
    if (d.includes(0x1d)) {
      sock.end();
      return;
    }
    sock.write(d);
  });
  sock.on('error', (err) => process.stderr.write(`fleetlab console: ${machine}: ${err.message}\n`));
  sock.pipe(process.stdout);
  await new Promise<void>((r) => sock.on('close', r));
  if (process.stdin.isTTY) process.stdin.setRawMode(false);
  process.stdin.pause();
  return 0;
}
