// The text on a machine's virtual consoles, read from the kernel's /dev/vcsN (NTD's get_tty_text and
// wait_until_tty_matches): the screen's characters row after row, folded at the console's width.
import { ConfigurationError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { ExecOptions, Shell } from '../protocols/shell.ts';
import { deadlineFrom, pollUntil } from '../time/deadline.ts';
import { toPattern } from '../console/stream-console.ts';
import { plain } from './plain.ts';

function checkTty(tty: number): void {
  if (!Number.isInteger(tty) || tty < 1 || tty > 63) throw new ConfigurationError(`virtual console ${tty}: a number from 1 to 63 (tty1 is 1)`);
}

/** The text of virtual console `tty` (1 for tty1), one line per screen row, as the kernel holds it in /dev/vcsN. */
export async function ttyText(shell: Shell, tty: number, opts?: ExecOptions): Promise<string> {
  checkTty(tty);
  const r = await plain(shell).execute(`[ -e /dev/vcs${tty} ] || exit 4; cols=$(stty -F /dev/tty${tty} size 2>/dev/null) || cols='25 80'; fold -w "\${cols#* }" /dev/vcs${tty}`, opts);
  if (r.exitCode === 4) throw new ConfigurationError(`${shell.machineName} has no virtual console ${tty} (no /dev/vcs${tty}: a guest without a VT console, or one never opened)`);
  if (r.exitCode !== 0) throw new ConfigurationError(`reading /dev/vcs${tty} on ${shell.machineName} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** Waits until virtual console `tty`'s text matches `pattern` (a RegExp, or a string read as one; `{ literal }`: plain text); returns the match. */
export async function waitUntilTtyMatches(shell: Shell, tty: number, pattern: RegExp | string, opts?: ExecOptions & { intervalMs?: number; literal?: boolean; lastLines?: () => string[] }): Promise<RegExpExecArray> {
  checkTty(tty);
  const re = toPattern(pattern, !!opts?.literal, `tty${tty} of ${shell.machineName}`);
  const awaited = `tty${tty} to show ${re}`;
  const deadline = deadlineFrom(opts, 900_000, `wait for ${awaited} on ${shell.machineName}`, 'pass { timeout } to waitUntilTtyMatches');
  let last = '';
  const res = await pollUntil(
    async () => {
      last = await ttyText(shell, tty, { deadline, signal: opts?.signal });
      return re.exec(last) ?? undefined;
    },
    { deadline, intervalMs: opts?.intervalMs ?? 500, signal: opts?.signal, awaited },
  );
  if (!res.timedOut) return res.value;
  const screen = last.split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(-10);
  throw new TimeoutError('test-failure', { awaited: `${awaited} (its last non-blank rows: ${screen.length ? screen.map((l) => `"${l}"`).join(' | ') : 'none'})`, deadline, machine: shell.machineName, lastLines: opts?.lastLines?.() ?? [] });
}
