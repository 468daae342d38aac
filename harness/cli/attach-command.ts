// `fleetlab attach [session]`: this terminal into the REPL of a paused run or a `fleetlab up` (its Unix socket).
import { createConnection } from 'node:net';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { findSession } from '../debug/sessions.ts';
import type { AttachHello } from '../debug/repl-session.ts';

/** Connects stdin/stdout to the session's REPL until it ends or detaches (Ctrl-D). */
export async function attachCommand(which: string | undefined): Promise<number> {
  const s = findSession(which, 'fleetlab attach');
  if (!s.repl) throw new ConfigurationError(`fleetlab attach: session ${s.id} has no REPL`);
  const sock = createConnection({ path: s.repl });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', (err) => reject(new ConfigurationError(`fleetlab attach: cannot reach ${s.id}'s REPL at ${s.repl}: ${err.message} (it may have just ended)`)));
  });
  const tty = !!process.stdin.isTTY;
  const hello: AttachHello = { fleetlabAttach: 1, terminal: tty, columns: process.stdout.columns };
  sock.write(`${JSON.stringify(hello)}\n`);
  if (tty) process.stdin.setRawMode(true);
  process.stdin.pipe(sock);
  sock.pipe(process.stdout);
  await new Promise<void>((r) => sock.on('close', () => r()));
  process.stdin.unpipe(sock);
  if (tty) process.stdin.setRawMode(false);
  process.stdin.pause();
  return 0;
}
