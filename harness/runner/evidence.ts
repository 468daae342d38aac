// Evidence on failure: when a case fails, what an engineer asks for first is fetched from every machine still up,
// before the machines are stopped, and attached to the case: the kernel's log, the boot's journal (or /var/log/messages
// without systemd), systemd's failed units, the current and booted NixOS generation with the boot entries. A profile
// adds commands and switches built-in ones off (guest.evidence { add, ignore }). Each command has its own budget, the
// whole fetch one too, and the run's abort ends it: evidence never holds a failing run up for long.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManagedMachine } from '../protocols/machine.ts';

/** One thing to fetch: its output goes to evidence/<role>-<name>.txt. */
export interface EvidenceItem {
  name: string;
  command: string;
}

export const BUILTIN_EVIDENCE: readonly EvidenceItem[] = [
  { name: 'dmesg', command: 'dmesg' },
  { name: 'journal', command: 'if [ -d /run/systemd/system ]; then journalctl -b --no-pager -o short-monotonic; elif [ -r /var/log/messages ]; then cat /var/log/messages; else echo "no journal (PID 1 is not systemd) and no /var/log/messages"; fi' },
  { name: 'failed-units', command: 'if [ -d /run/systemd/system ]; then systemctl --failed --no-pager --full; else echo "no systemd: PID 1 is $(cat /proc/1/comm)"; fi' },
  { name: 'generation', command: 'echo "current system: $(readlink /run/current-system 2>/dev/null || echo none)"; echo "booted system:  $(readlink /run/booted-system 2>/dev/null || echo none)"; echo; ls -l /nix/var/nix/profiles/ 2>/dev/null; echo; for d in /boot/loader/entries /boot/extlinux /boot/grub; do [ -d "$d" ] && { echo "$d:"; ls -l "$d"; }; done; true' },
];

/** Bytes of one command's output kept (its end, where the latest is). */
const MAX_BYTES = 2 * 1024 * 1024;

/** The commands for `m`: the built-in ones its profile does not ignore, then its own. */
export function evidenceFor(m: ManagedMachine): EvidenceItem[] {
  const own = m.profile.guest.evidence;
  return [...BUILTIN_EVIDENCE.filter((e) => !own.ignore.includes(e.name)), ...own.add];
}

/**
 * Fetches the evidence of every machine that is up (its shell answers within 5 s) into `dir`/evidence/, at most
 * `perCommandMs` per command and `totalMs` in all; returns the files as artifacts and a line per machine for the
 * case's output. A command that fails or times out still leaves its file, saying so.
 */
export async function collectEvidence(machines: Record<string, ManagedMachine>, dir: string, opts: { signal: AbortSignal; perCommandMs?: number; totalMs?: number }): Promise<{ artifacts: Array<{ name: string; path: string }>; lines: string[] }> {
  const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.totalMs ?? 90_000)]);
  const out = join(dir, 'evidence');
  const artifacts: Array<{ name: string; path: string }> = [];
  const lines: string[] = [];
  await Promise.all(
    Object.entries(machines).map(async ([role, m]) => {
      if (m.profile.guest.shell.kind === 'none' || !(await m.isUp())) {
        lines.push(`evidence: ${role} is not up (state ${m.state}); nothing fetched`);
        return;
      }
      await mkdir(out, { recursive: true });
      const got: string[] = [];
      for (const item of evidenceFor(m)) {
        if (signal.aborted) break;
        const path = join(out, `${role}-${item.name}.txt`);
        let text: string;
        try {
          const r = await m.execute(item.command, { timeout: opts.perCommandMs ?? 20_000, strict: false, signal });
          const body = r.stdout.length > MAX_BYTES ? `[… the first ${r.stdout.length - MAX_BYTES} bytes left out]\n${r.stdout.slice(-MAX_BYTES)}` : r.stdout;
          text = `$ ${item.command}\n${body}${r.stderr ? `\n[stderr]\n${r.stderr}` : ''}${r.exitCode !== 0 ? `\n[exit code ${r.exitCode}${r.timedOut ? ', timed out' : ''}]` : ''}\n`;
        } catch (err) {
          text = `$ ${item.command}\n[could not be fetched: ${(err as Error).message.split('\n')[0]}]\n`;
        }
        await writeFile(path, text);
        artifacts.push({ name: `evidence/${role}-${item.name}.txt`, path });
        got.push(item.name);
      }
      lines.push(`evidence: ${role}: ${got.join(', ') || 'nothing (out of time)'} in ${join('evidence', `${role}-*.txt`)}`);
    }),
  );
  return { artifacts, lines };
}
