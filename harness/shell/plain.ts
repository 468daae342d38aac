// fleetlab's own guest commands (NixOS helpers, boot loaders, installs, warm restores) run in plain sh, whatever a
// profile says of strict commands: they are written for POSIX sh semantics (a `[ -e x ] && chattr …; printf …` whose
// middle may fail, a probe allowed to miss) and must behave the same on every guest shell, dash included.
import type { ExecOptions, Shell } from '../protocols/shell.ts';

/** The command calls fleetlab's own code makes. */
export type Commands = Pick<Shell, 'execute' | 'succeed' | 'waitUntilSucceeds'>;

/** `s`'s commands with `{ strict: false }`: plain sh, as fleetlab's own commands are written. */
export function plain(s: Commands): Commands {
  const o = (opts?: ExecOptions & { intervalMs?: number }) => ({ ...opts, strict: false });
  return {
    execute: (c, opts) => s.execute(c, o(opts)),
    succeed: (c, opts) => s.succeed(c, o(opts)),
    waitUntilSucceeds: (c, opts) => s.waitUntilSucceeds(c, o(opts)),
  };
}
