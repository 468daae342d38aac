// `fleetlab ssh <machine> [command..]`: OpenSSH into a machine of a paused run or a `fleetlab up`, with the key
// fleetlab knows it accepts and its pinned host key.
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { findMachine } from '../debug/sessions.ts';

/** Runs ssh into the machine (interactive, or `command`); its exit code. */
export async function sshCommand(name: string, command: string[], session?: string): Promise<number> {
  const { session: s, machine } = findMachine(name, 'fleetlab ssh', session);
  const e = machine.ssh;
  if (!e) throw new ConfigurationError(`fleetlab ssh: ${name} (${s.id}) has no SSH forward: its scenario does not say ssh: true. fleetlab console ${name} reaches its serial console.`, { details: { machine: name } });
  const dir = mkdtempSync(join(tmpdir(), 'fleetlab-ssh-'));
  try {
    const known = join(dir, 'known_hosts');
    if (e.hostKey) writeFileSync(known, `[${e.host}]:${e.port} ${e.hostKey}\n`);
    const args = ['-p', String(e.port), '-o', `UserKnownHostsFile=${e.hostKey ? known : '/dev/null'}`, '-o', `StrictHostKeyChecking=${e.hostKey ? 'yes' : 'no'}`, '-o', 'LogLevel=ERROR', ...(e.privateKey ? ['-i', e.privateKey, '-o', 'IdentitiesOnly=yes'] : []), `${e.user}@${e.host}`, ...command];
    const r = await execa('ssh', args, { stdio: 'inherit', reject: false });
    return r.exitCode ?? 255;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
