// What machine.nixos needs of a machine: its shell, power (reboot, crash), consoles and log, and, where it has them,
// a boot menu to press keys into and an SSH endpoint for nix copy. A QEMU VM and a lab board both implement it, so
// generations, switches and rollbacks are written once, against this, and never against either kind.
import type { StreamConsole } from '../console/stream-console.ts';
import type { TestbedImage } from '../qemu/testbed-source.ts';
import type { SshShell } from '../ssh/ssh-session.ts';
import type { Screen } from '../protocols/screen.ts';
import type { Shell, ExecOptions } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';

/** NixOS's system profile: /nix/var/nix/profiles/system -> system-N-link -> a toplevel. */
export const SYSTEM_PROFILE = '/nix/var/nix/profiles/system';

/** Where an SSH client outside fleetlab (ssh, nix copy, nixos-anywhere) reaches a machine. */
export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
  /** A private key file its user accepts, where fleetlab knows one. */
  privateKey?: string;
  /** Its host key (`type base64`), once pinned, for a known_hosts line. */
  hostKey?: string;
}

/** The machine NixosHelpers drives: a VM or a board. */
export interface NixosMachine extends Shell {
  readonly name: string;
  /** A QEMU VM or a lab board (whose shell channel is a serial line: bulk goes over SSH where it has a network address). */
  readonly kind: 'vm' | 'board';
  /** How messages name it: "board vboard-1 (a lab board)". */
  readonly label: string;
  /** Boots so far: each start and each reset counts one. */
  readonly boots: number;
  readonly log: { note(line: string): void; lastLines(n?: number): string[] };
  /** The profile facts the boot menus depend on. */
  readonly profile: { readonly name: string; readonly arch: string; readonly serialConsole: string; readonly bootloaderConsole?: string };
  /** The fleetlab testbed disk it boots, if any (testbed generations are built for it). */
  readonly testbed?: TestbedImage | undefined;
  /** True when an SSH client on this host can reach it (sshEndpoint() then answers). */
  readonly hasHostLink: boolean;
  bootId(opts?: ExecOptions): Promise<string>;
  console(name?: string): StreamConsole;
  waitForConsoleText(pattern: RegExp | string, opts?: WaitOptions & { literal?: boolean }): Promise<RegExpExecArray>;
  sendConsole(text: string): Promise<void>;
  /** Its screen, where it has one: keys into a boot menu (QEMU's send-key). */
  readonly screen?: Pick<Screen, 'sendKeys'>;
  waitForShell(opts?: WaitOptions): Promise<void>;
  reboot(opts?: WaitOptions): Promise<number>;
  /** Cuts the power. */
  crash(): Promise<void>;
  sshEndpoint(): SshEndpoint;
  ssh(opts?: WaitOptions & { user?: string; privateKey?: string | Buffer; expectNewHostKey?: boolean }): Promise<SshShell>;
  /** `signal` joined with the machine's life. */
  lifeSignal(signal?: AbortSignal): AbortSignal;
}
