// The identity of each system under test, for the run history (fleetlab investigate diffs them): at a case's end, the
// NixOS system each machine runs (/run/current-system, resolved) and its closure, and the testbed image it booted with
// its packages. One guest command per machine, only when a history records the run. The closure comes from the
// machine's own Nix (nix-store -qR) or, on a testbed without Nix, from the toplevels fleetlab built in this process;
// contents are kept once per identity (a toplevel's path fixes its closure, an image's key its packages).
import type { ManagedMachine } from '../protocols/machine.ts';
import { knownClosure } from '../nixos/generation.ts';

/** What a machine ran: ids into the contents (systemContents). */
export interface SystemIdentity {
  /** The NixOS system at the case's end: /run/current-system resolved, "/nix/store/<hash>-nixos-system-<host>-<version>". */
  toplevel?: string;
  /** The fleetlab testbed image it booted: "testbed:<recipe>@<key>". */
  image?: string;
}

/** One guest command: the current system's store path, then its closure where the machine has Nix. */
export const SYSTEM_COMMAND =
  '[ -e /run/current-system ] || exit 0; p=$(readlink -f /run/current-system); echo "$p"; if command -v nix-store >/dev/null 2>&1; then nix-store -qR "$p" 2>/dev/null; fi; true';

/** Store paths (a closure) or "name-version" entries (an image's packages), by identity, as found in this process. */
const contents = new Map<string, string[]>();

/** The contents known for `ids` (those this process saw). */
export function systemContents(ids: Iterable<string>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const id of ids) {
    const c = contents.get(id);
    if (c) out[id] = c;
  }
  return out;
}

/** Every identity a set of machine results names. */
export function identityIds(systems: Array<SystemIdentity | undefined>): string[] {
  return [...new Set(systems.flatMap((s) => [s?.toplevel, s?.image].filter((x): x is string => !!x)))];
}

/**
 * The system `m` runs now, read in one command with a 15 s budget; undefined when it is not running or has no shell
 * (nothing is waited for: a failed case's machine that does not answer is left as it is).
 */
export async function systemOf(m: ManagedMachine, signal: AbortSignal): Promise<SystemIdentity | undefined> {
  const id: SystemIdentity = {};
  const img = (m as { testbed?: { recipe: string; key: string; packages: Record<string, string> } }).testbed;
  if (img) {
    id.image = `testbed:${img.recipe}@${img.key.slice(0, 16)}`;
    if (!contents.has(id.image)) contents.set(id.image, Object.entries(img.packages).map(([n, v]) => `${n}-${v}`).sort());
  }
  if (m.state === 'running' && m.profile.guest.shell.kind !== 'none') {
    try {
      const r = await m.execute(SYSTEM_COMMAND, { timeout: 15_000, strict: false, signal });
      const [top, ...closure] = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/nix/store/'));
      if (r.exitCode === 0 && top) {
        id.toplevel = top;
        const paths = closure.length ? closure : knownClosure(top);
        if (paths && !contents.has(top)) contents.set(top, [...paths].sort());
      }
    } catch {
      /* not answering: its identity is what the host knows */
    }
  }
  return id.toplevel || id.image ? id : undefined;
}
