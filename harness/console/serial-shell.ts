// The serial-login shell channel's bootstrap, written once for VMs whose profile says serial-login and for lab
// boards: once per boot, log in on the console, then quiet the kernel (its messages would land inside answers), put
// the tty raw and run a shell that reads the tty as its script and greets as NixOS's backdoor does.
import type { Console } from '../protocols/console.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';

/** Typed at the login shell. The banner is split in the command so the tty's echo of it cannot pass for the greeting. */
export const SPAWN_SERIAL_SHELL = `exec sh -c 'dmesg -n 1 2>/dev/null; stty raw -echo; printf "Spawning backdoor %s\\n" "root shell..."; PS1= exec /bin/sh "$(tty)"'\n`;

export class SerialShellStart {
  private starting: Promise<void> | undefined;
  private readonly how: SerialShellHow;

  constructor(how: SerialShellHow) {
    this.how = how;
  }

  /** Logs in and starts the shell, once per boot (a second caller waits for the first); a failed start is tried anew next time. */
  start(opts: WaitOptions): Promise<void> {
    this.starting ??= (async () => {
      await this.how.before?.(opts);
      await this.how.login(opts);
      await this.how.console().write(SPAWN_SERIAL_SHELL);
    })();
    this.starting.catch(() => (this.starting = undefined));
    return this.starting;
  }

  /** A new boot (or a new QEMU process): the next start logs in again. */
  reset(): void {
    this.starting = undefined;
  }
}

/** How a machine's serial shell starts: its console, its login, and what to wait for before the first key. */
export interface SerialShellHow {
  console(): Console;
  login(opts: WaitOptions): Promise<void>;
  /** Waited for before logging in (a board: a login prompt, or a quiet line, so no key stops its boot loader). */
  before?(opts: WaitOptions): Promise<void>;
}
