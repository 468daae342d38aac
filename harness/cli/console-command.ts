// `fleetlab console <machine>`: attaches this terminal to a machine kept by --pause-on-failure.
import { existsSync, readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';

/** Connects stdin/stdout to the machine's console socket; Ctrl-] detaches. */
export async function consoleCommand(machine: string, reportDir = 'reports/latest'): Promise<number> {
  const dir = resolve(reportDir, 'consoles');
  const path = join(dir, `${machine}.sock`);
  if (!existsSync(path)) {
    const have = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)) : [];
    throw new ConfigurationError(
      `No paused machine "${machine}" in ${dir}. ${have.length ? `Paused machines: ${have.join(', ')}.` : 'Run with --pause-on-failure; a failed case keeps its machines running.'}`,
      { details: { machine } },
    );
  }
  const sock = createConnection({ path });
  process.stderr.write(`attached to ${machine} (Ctrl-] to detach)\n`);
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on('data', (d: Buffer) => {
    if (d.includes(0x1d)) {
      sock.end();
      return;
    }
    sock.write(d);
  });
  sock.pipe(process.stdout);
  await new Promise<void>((r) => sock.on('close', r));
  if (process.stdin.isTTY) process.stdin.setRawMode(false);
  process.stdin.pause();
  return 0;
}
