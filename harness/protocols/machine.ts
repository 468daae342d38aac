// The Machine protocol: the one handle a scenario gets for a machine, a QEMU VM or a lab board. What every machine
// does (shell, power, consoles and login, boots, log, NixOS) is a member; what only some can do is an optional
// capability (screen, media, hostLink, net), so the compiler makes a scenario check for it (or call need()) before use.
import type { ConsoleCheckHit } from '../console/console-checks.ts';
import type { BatmanMesh } from '../net/batman-mesh.ts';
import type { NixosHelpers } from '../nixos/nixos.ts';
import type { HostProcess } from '../process/usage.ts';
import type { SshEndpoint } from '../nixos/nixos-machine.ts';
import type { MachineProfile } from '../qemu/profile.ts';
import type { SshShell } from '../ssh/ssh-session.ts';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { Console, ExpectOptions } from './console.ts';
import type { Media } from './media.ts';
import type { Power } from './power.ts';
import type { Screen } from './screen.ts';
import type { CopyReport, ExecOptions, Shell } from './shell.ts';
import type { Systemd } from './systemd.ts';
import type { Monitor } from './monitor.ts';
import type { WaitOptions } from './wait-options.ts';

/** Where a machine is in its life: off, powering on, up, powering off. */
export type MachineState = 'stopped' | 'starting' | 'running' | 'stopping';

/** A machine's start under --warm / snapshot: 'boot'. */
export interface StartReport {
  mode: 'warm' | 'cold';
  /** From the decision to restore or boot to the shell answering (a wait for another machine's snapshot not included). */
  ms: number;
  /** Time spent waiting for the machine that boots to make the snapshot. */
  waitedMs?: number;
  /** Why a cold boot: the first of its shape (it made the snapshot), or what rules a snapshot out. */
  reason?: string;
  /** A restore that failed and was retried cold: an infrastructure event, not a test failure. */
  restoreFailed?: string;
  snapshot?: string;
}

/** Facts about a started VM, for reports: profile, accelerator actually used, QEMU version. */
export interface VmFacts {
  kind: 'vm';
  profile: string;
  arch: string;
  firmware: string;
  accel: string;
  accelReason: string;
  /** Set when auto chose KVM but the machine showed no sign of life under it and was restarted under TCG. */
  accelFallback?: string;
  qemuVersion: string;
  /** How the machine came up when a warm start was asked for: restored from a snapshot, or booted (and why). */
  start?: StartReport;
  /** A scenario's setup checkpoint: restored (and from which case), or its steps run (and saved, or why not). */
  checkpoint?: CheckpointReport;
}

/** How a case's machine reached its scenario's setup checkpoint. */
export interface CheckpointReport {
  name: string;
  /** restored: from the checkpoint; saved: its steps ran and the checkpoint was made; replayed: its steps ran, nothing saved. */
  mode: 'restored' | 'saved' | 'replayed';
  /** The restore, or the steps (and the save). */
  ms: number;
  key?: string;
  /** The case that made the checkpoint (restored). */
  madeBy?: string;
  /** Why its steps ran without being saved, or why a restore was not tried. */
  reason?: string;
  /** A restore that failed, after which the steps replayed: an infrastructure event, not a test failure. */
  restoreFailed?: string;
}

/** Facts about a powered-on lab board, for reports: its profile, and the board, serial line and power switch it is. */
export interface BoardFacts {
  kind: 'board';
  profile: string;
  arch: string;
  firmware: string;
  board: string;
  serial: string;
  power: string;
}

/** What a started machine is, for reports. */
export type MachineFacts = VmFacts | BoardFacts;

/** The console log of a machine: its file, when it began, its last lines, and notes of fleetlab's own. */
export interface MachineLog {
  readonly path: string;
  /** When the log began (ms since the epoch): reports line steps up against it. */
  readonly t0: number;
  lastLines(n?: number): string[];
  /** A line of fleetlab's own in the log ("power on", "forward: ..."). */
  note(text: string): void;
  /** Calls `fn` with each line as it comes (a console served to `fleetlab console`); returns the unsubscribe. */
  onLine(fn: (line: string) => void): () => void;
}

/** Options of ssh(): another user or key than the machine's, and a host key that may have changed (a reinstall). */
export interface SshOptions extends WaitOptions {
  user?: string;
  privateKey?: string | Buffer;
  expectNewHostKey?: boolean;
}

/** Host links: 127.0.0.1 forwards to the machine's TCP ports (a VM's restricted user-mode NIC). */
export interface HostLink {
  /** A 127.0.0.1 port forwarded to the machine's TCP `guestPort`. */
  forwardPort(guestPort: number): Promise<number>;
}

/** The machine's place on the scenario's networks (fleetlab's fabric): addresses, MACs, the batman-adv mesh. */
export interface FabricNet {
  /** This machine's address on `network`. */
  address(network: string): string;
  /** The MAC of its NIC on `network` (stable per scenario, machine and network). */
  mac(network: string): string;
  /** batman-adv helpers for its mesh (bat0). */
  readonly mesh: BatmanMesh;
  /** Waits until its mesh has a route to `dest` (a machine on the same batman network, or an originator MAC). */
  waitForMeshRoute(dest: Machine | string, opts?: WaitOptions & { network?: string }): Promise<string>;
  /** The one batman network it is on. */
  meshNetwork(): string;
}

/** The capabilities a machine may lack, by name. */
export interface Capabilities {
  /** Screenshots and keys (a VM's display). */
  screen: Screen;
  /** The QEMU monitor: HMP and QMP commands, QMP events (a VM). */
  monitor: Monitor;
  /** Media changed while off: a VM's disks and CD-ROM, a board's SD card through its mux. */
  media: Media;
  /** 127.0.0.1 forwards to its ports (a VM with hostLink: true or ssh: true). */
  hostLink: HostLink;
  /** The host process behind it (a VM's QEMU): its pid, CPU time and memory (harness/process/usage.ts). */
  hostProcess: HostProcess;
  /** Addresses and MACs on the scenario's networks, and the batman-adv mesh (VMs on fleetlab's fabric). */
  net: FabricNet;
}

export type Capability = keyof Capabilities;

/** A machine as a scenario sees it: a QEMU VM or a lab board, driven the same way. */
export interface Machine extends Shell, Systemd, Power, Partial<Capabilities> {
  /** The role's name in the scenario. */
  readonly name: string;
  /** What kind of machine this is: a QEMU VM or a lab board. */
  readonly kind: 'vm' | 'board';
  /** "machine main (a QEMU VM)", "board vboard-1 (a lab board)": how messages name it. */
  readonly label: string;
  readonly profile: MachineProfile;
  readonly state: MachineState;
  /** Whether it runs and its shell answers now (NTD's is_up); false, not an error, when it does not. */
  isUp(opts?: Pick<WaitOptions, 'timeout'>): Promise<boolean>;
  /** Facts for reports, once started. */
  readonly facts: MachineFacts | undefined;
  /** Boots so far: each start and each reset counts one. */
  readonly boots: number;
  readonly log: MachineLog;
  /** Whether fleetlab gives the system its hostname (a VM's kernel command line or fw_cfg; a board keeps its own). */
  readonly passesHostname: boolean;
  /** The guest kernel's boot id: changes on every boot. */
  bootId(opts?: ExecOptions): Promise<string>;
  /** Its folder in the case's output. */
  readonly logDir: string;
  /** The text on virtual console `tty` (1 for tty1), from /dev/vcsN, a line per screen row. */
  ttyText(tty: number, opts?: ExecOptions): Promise<string>;
  /** Waits until virtual console `tty` shows text matching `pattern` (a RegExp, or a string read as one; `{ literal: true }`: plain text). */
  waitUntilTtyMatches(tty: number, pattern: RegExp | string, opts?: ExecOptions & { intervalMs?: number; literal?: boolean }): Promise<RegExpExecArray>;
  /** A host file or folder to `guestPath`, over the shell channel, checked by SHA-256. */
  copyToMachine(hostPath: string, guestPath: string, opts?: ExecOptions): Promise<CopyReport>;
  /** A guest file or folder to `<hostDir>/<its name>` (default: the machine's files/ in the case's output, attached), checked by SHA-256. */
  copyFromMachine(guestPath: string, hostDir?: string, opts?: ExecOptions): Promise<CopyReport>;
  /** Waits until the machine's shell channel answers. */
  waitForShell(opts?: WaitOptions): Promise<void>;
  /** Logs in on the serial console (the profile's, or the lab file's, user and password by default). */
  login(user?: string, password?: string, opts?: WaitOptions): Promise<void>;
  /** A console by name (default: the serial console with kernel messages and the login). */
  console(name?: string): Console;
  /** Waits for text matching `pattern` on the serial console: a RegExp, or a string read as one (`{ literal: true }`: plain text). */
  waitForConsoleText(pattern: RegExp | string, opts?: ExpectOptions): Promise<RegExpExecArray>;
  /** Writes text to the serial console. */
  sendConsole(text: string): Promise<void>;
  /** Runs `fn` with console check `name` silenced, for a step that provokes it; resolves once the check matched. */
  expectConsoleCheck(name: string, fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit>;
  /** expectConsoleCheck('kernel-panic', fn). */
  expectPanic(fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit>;
  /** An SSH session into the machine with a pinned host key (a VM's ssh: true forward, a board's network address). */
  ssh(opts?: SshOptions): Promise<SshShell>;
  /** Its address on one of the scenario's networks: `net.address(network)`, an error naming it where it has none. */
  address(network: string): string;
  /** Where an SSH client outside fleetlab (ssh, nix copy, nixos-anywhere) reaches it. */
  sshEndpoint(): SshEndpoint;
  /** The SSH user and private key the machine is known to accept, if fleetlab knows one. */
  readonly sshIdentity: { user: string; privateKey: string } | undefined;
  /** NixOS generations, switches and rollbacks on it. */
  readonly nixos: NixosHelpers;
  /** `signal` joined with the machine's life: aborted when either ends (for a host process that works on it). */
  lifeSignal(signal?: AbortSignal): AbortSignal;
  /** State changes ('state': stopped, starting, running, stopping). */
  on(event: 'state', listener: (state: MachineState) => void): unknown;
  off(event: 'state', listener: (state: MachineState) => void): unknown;
}

/** What the runner does with a machine beyond the scenario's handle: stop it at the end of a case. */
export interface ManagedMachine extends Machine {
  /** Stops the machine and ends every wait on it; what it started goes with it. */
  stop(): Promise<void>;
  on(event: 'state', listener: (state: MachineState) => void): unknown;
  on(event: 'died', listener: (reason: string) => void): unknown;
  /** A file it made for the report (copyFromMachine's, a screenshot): the runner attaches it to the case. */
  on(event: 'artifact', listener: (artifact: { name: string; path: string }) => void): unknown;
  /** A reset (a reboot, the reset button, a board's power cycle): the boot count after it. */
  on(event: 'reset', listener: (boots: number) => void): unknown;
  /** A console check fired (a kernel panic, an oops…). */
  on(event: 'console-check', listener: (hit: ConsoleCheckHit) => void): unknown;
}

/**
 * The capability `cap` of `machine`, or a ConfigurationError at the call site naming it and the machine:
 * "screen is not supported by board vboard-1 (a lab board)". `why` says what the caller wanted it for.
 */
export function need<K extends Capability>(machine: Machine, cap: K, why?: string): Capabilities[K] {
  const c = machine[cap];
  if (c === undefined) throw new ConfigurationError(`${cap} is not supported by ${machine.label}${why ? `: ${why} needs it` : ''}`);
  return c as Capabilities[K];
}
