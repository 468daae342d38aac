// The scenario API: what a scenario file exports and what its body receives.
import type { Duration } from '../time/duration.ts';
import type { BrowserChecks } from '../browser/browser.ts';
import type { ConsoleCheckSettings } from '../console/console-checks.ts';
import type { BatmanOptions, NetworkSpec } from '../net/fabric.ts';
import type { Topology } from '../net/topology.ts';
import type { InvariantCheck, InvariantHandle, InvariantOptions } from './invariants.ts';
import type { FabricHandle } from '../net/fabric-handle.ts';
import type { InstallReport, IsoInstallOptions, SdInstallOptions } from '../install/install.ts';
import type { AnywhereReport, NixosAnywhereOptions } from '../install/nixos-anywhere.ts';
import type { BootOverride } from '../qemu/boot-override.ts';
import type { Machine } from '../protocols/machine.ts';
import type { Deadline } from '../time/deadline.ts';

export type { Machine } from '../protocols/machine.ts';

/**
 * A role's machine: a profile, optionally with more (or less) memory than it gives (memoryMiB) and booting the user's
 * image instead (paths relative to the scenario file); with `count`, a fleet of that many such machines (role node,
 * count 64: node0 … node63, the body gets machines.node as their array), or
 * a board of the run's lab (--lab): { board: 'tag:rpi4' } or { board: 'board:pi4-03' }.
 */
export type MachineRequest = ({ profile: string; memoryMiB?: number; count?: number } & BootOverride) | { board: string };

/** A mesh network whose links a topology makes (line, ring, grid from 'fleetlab') over a fleet's role or machine names. */
export interface TopologyNetwork {
  topology: Topology;
  batman?: boolean | BatmanOptions;
}

/** How far the runner brings machines before the body runs. */
export type StartMode = 'shell' | 'power-on' | 'manual';

/** What a scenario body receives. `M` maps role names to profile names. */
export interface ScenarioContext<M extends Record<string, string | MachineRequest>> {
  /**
   * The machines by role, started (and with a shell, unless `start` says otherwise): a QEMU VM or a lab board
   * (--machine board:…/tag:…), the same Machine either way. What only some machines can do (screen, media, hostLink,
   * net) is optional: check it, or `need(machine, 'screen')`, which names the machine that lacks it.
   */
  machines: { [K in keyof M]: M[K] extends { count: number } ? Machine[] : Machine };
  /** Runs a named step; steps nest, are timed, and appear in the reports. */
  step<T>(name: string, fn: () => Promise<T> | T, opts?: { timeout?: Duration }): Promise<T>;
  /** Ends the scenario as skipped, with a reason. */
  skip(reason: string): never;
  /** Adds a file (screenshot, log) to the case's artifacts. */
  attach(path: string, name?: string): void;
  /** A line in the case's output. */
  log(message: string): void;
  /** A property of the case in JUnit (<property name value>) and report.json: a measurement, a version. */
  property(name: string, value: string | number): void;
  /** The scenario's deadline: every wait inside the body stays within it. */
  deadline: Deadline;
  /** Aborted when the run is interrupted or the scenario times out. */
  signal: AbortSignal;
  /** Which try this is, from 1. */
  attempt: number;
  /**
   * What the run was given (`fleetlab run --input NAME=VALUE`): the build under test, an image, a version. The run
   * history keeps them with the run; `fleetlab investigate --rerun` reruns a case with another run's inputs.
   */
  inputs: Readonly<Record<string, string>>;
  /** The scenario's networks: partitions, link faults, captures (empty when it declares none). */
  net: FabricHandle;
  /**
   * Browser checks: `await browser.open(machine, { port: 80, path: '/' })` is a Playwright page (playwright-core) on
   * the host's Chromium, showing the machine's forwarded port (the scenario needs hostLink: true). A failed case gets
   * each page's screenshot and a Playwright trace.
   */
  browser: BrowserChecks;
  /**
   * Install flows, each phase a step of this case with its own deadline: `install.fromIso(machine, { iso, system,
   * target: { disk: '4G' } })` and `install.sdImage(machine, { image })` (the machine off: start: 'manual'), and
   * `install.nixosAnywhere(machine, { storePaths | flake, kexec })` (the machine running, with ssh: true).
   */
  install: InstallFlows;
  /**
   * A breakpoint: the REPL with the case's machines (by role and as `machines`), `net`, `step` and `ctx` bound, on
   * the terminal or, without one, for `fleetlab attach` (see docs/debugging.md); `.continue` resumes, `.abort` ends
   * the case as failed. The time paused does not count against the deadlines. In a run with no terminal and neither
   * --debug nor --pause-on-failure it only logs that it did not pause.
   */
  pause(why?: string): Promise<void>;
  /**
   * A check that holds for the rest of the case, as the NixOS test driver's polling conditions: run now and then
   * `every` (default 5 s) until the case ends; the first check that throws or returns false fails the case at once,
   * naming the invariant, when, and what the check said. `stop()` on the handle ends it early.
   */
  invariant(name: string, check: InvariantCheck, opts?: InvariantOptions): InvariantHandle;
}

/** The install flows as a scenario calls them (harness/install/install.ts). */
export interface InstallFlows {
  fromIso(machine: Machine, opts: IsoInstallOptions): Promise<InstallReport>;
  sdImage(machine: Machine, opts: SdInstallOptions): Promise<InstallReport>;
  nixosAnywhere(machine: Machine, opts: NixosAnywhereOptions): Promise<AnywhereReport>;
}

/**
 * A scenario's setup: steps that bring its machines to a named state, the checkpoint. The first case that runs them
 * saves every machine (RAM, device state, disks, EFI variables) and the networks' link conditions under a key made of
 * everything that led there (the scenario file but its run body, the files it imports, fleetlab itself, the machines'
 * profiles, images and options); a later case of the run (or, with --keep-snapshots, of a later run) with the same key
 * starts its machines from the checkpoint instead, each with its own identity. What run() returns (JSON) is saved
 * with it and given to the body as ctx.setup either way.
 */
export interface SetupSpec<M extends Record<string, string | MachineRequest>, S> {
  /** The name of the state the steps reach ('installed', 'generation 2 switched'): reports say it. */
  checkpoint: string;
  run: (ctx: ScenarioContext<M>) => Promise<S>;
}

/** A scenario as declared in a scenario file. */
export interface ScenarioSpec<M extends Record<string, string | MachineRequest>, S = undefined> {
  name: string;
  /** Roles to profile names, { router: 'x86_64-direct' }, or to { profile, image | kernel, initrd, append }. */
  machines: M;
  /** Budget of the whole scenario: ms, or a string with a unit ('20m'); scaled by --timeout-scale. Default 10 minutes. */
  timeout?: Duration;
  tags?: string[];
  /** Skip this scenario (true, or the reason). */
  skip?: boolean | string;
  /** How far machines are brought before the body runs. Default 'shell'. */
  start?: StartMode;
  /**
   * Console checks for this scenario's machines, on top of their profiles': `ignore` switches built-in ones off by
   * name (kernel-panic, oops, kernel-bug, emergency-shell, oom-kill, systemd-ordering-cycle), `add` adds patterns.
   */
  consoleChecks?: ConsoleCheckSettings;
  /**
   * Networks of fleetlab's fabric, by name: a list of roles is a switched LAN, `{ links: [['a','b'], ...] }` a mesh of
   * point-to-point links, `{ topology: grid('node', 8) }` links made from a fleet (or a list of roles); a fleet's role
   * in a LAN's list stands for all its machines. Each membership gives the machine a NIC (in this order) with a stable
   * MAC and an address (machine.net.address(name)); nothing leaves the fabric.
   */
  networks?: Record<string, NetworkSpec | TopologyNetwork>;
  /**
   * Warm starts: 'boot' restores each machine from a snapshot of its shape booted to its shell (the first machine of
   * a shape in the run boots and makes it); 'none' always boots, even under --warm. Default: what --warm says.
   */
  snapshot?: 'boot' | 'none';
  /** Give every machine a restricted 127.0.0.1 forward to its SSH server, for machine.ssh() (a host link, as below). */
  ssh?: boolean;
  /**
   * Give every machine a host link: a restricted user-mode NIC that only 127.0.0.1 forwards reach (port 22, and any
   * port machine.hostLink.forwardPort() or browser.open() asks for); the guest reaches nothing through it.
   */
  hostLink?: boolean;
  /**
   * Steps every case of this scenario starts from, saved as a checkpoint and restored instead of replayed where it
   * can be (SetupSpec; --no-checkpoints always replays). A test about these steps themselves runs them in its body.
   */
  setup?: SetupSpec<M, S>;
  run: (ctx: ScenarioContext<M> & { setup: S }) => Promise<void>;
}

const SCENARIO = Symbol.for('fleetlab.scenario');

/**
 * A declared scenario, as the loader gives it (fleets.ts's expandFleets): counted roles are their machines, topologies
 * are links, and `fleets` says which machines each counted role became.
 */
export type ScenarioDefinition = Omit<ScenarioSpec<Record<string, string | MachineRequest>, unknown>, 'networks'> & {
  networks?: Record<string, NetworkSpec>;
  fleets?: Record<string, string[]>;
  [SCENARIO]: true;
};

/** Declares a scenario: export the result from a scenario file. */
export function scenario<const M extends Record<string, string | MachineRequest>, S = undefined>(spec: ScenarioSpec<M, S>): ScenarioDefinition {
  // Counted roles and topologies stay as declared until the loader expands them (fleets.ts).
  return { ...(spec as unknown as Omit<ScenarioDefinition, typeof SCENARIO>), [SCENARIO]: true };
}

/** True for values made by scenario(). */
export function isScenario(v: unknown): v is ScenarioDefinition {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[SCENARIO] === true;
}
