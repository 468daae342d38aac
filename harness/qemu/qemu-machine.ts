// A QEMU virtual machine: supervised process, QMP, consoles, the shell channel and power, from a profile.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { consoleChecks, ConsoleWatcher, type ConsoleCheckHit, type ConsoleCheckSettings } from '../console/console-checks.ts';
import { ConsoleLog } from '../console/console-log.ts';
import { PROMPT_QUIET_MS, serialLogin } from '../console/serial-login.ts';
import { SerialShellStart } from '../console/serial-shell.ts';
import { StreamConsole } from '../console/stream-console.ts';
import { ConfigurationError, FleetlabError, InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import { spawnSupervised, type SupervisedProcess } from '../process/supervisor.ts';
import { makeOwnedDirSync, makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import { connectUnix } from '../process/unix-socket.ts';
import { need, type FabricNet, type HostLink, type Machine, type MachineFacts, type MachineState, type ManagedMachine, type SshOptions, type StartReport } from '../protocols/machine.ts';
import type { Media, MediaSpec } from '../protocols/media.ts';
import type { Power, PowerState } from '../protocols/power.ts';
import type { Screen } from '../protocols/screen.ts';
import type { ExecOptions, ExecResult, Shell } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { abbreviate, BackdoorShell } from '../shell/backdoor-shell.ts';
import { shellQuote } from '../shell/guest-helper.ts';
import { ShellOps } from '../shell/shell-ops.ts';
import { ShellMachine } from '../shell/shell-machine.ts';
import { deadlineFrom, formatMs, now, pollUntil, raceDeadline, type Deadline } from '../time/deadline.ts';
import { Lifeline, withLife } from '../time/lifeline.ts';
import { chooseAccel, markKvmUnusable } from './accel-probe.ts';
import { QEMU_PACKAGES, runTool, which } from './host-packages.ts';
import { loadProfile } from './profile-loader.ts';
import { nicUnsupported, type MachineProfile } from './profile.ts';
import { createOverlay, imageInfo } from './disk-overlay.ts';
import { ConsoleCheckFired, MachineDied, MachineStopped } from './machine-end.ts';
import { consoleSocket, qemuArgv, qmpSocket, type LaunchDisk } from './qemu-argv.ts';
import { qemuCommand } from './qemu-command.ts';
import { raspiFirmwareBoot } from './raspi-firmware.ts';
import { comboToQcodes, textToCombos } from './qemu-keys.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';
import { stableMac, type NicPlan } from '../net/fabric.ts';
import { BatmanMesh } from '../net/batman-mesh.ts';
import { freeTcpPort } from '../net/free-port.ts';

export type { MachineFacts, MachineState, StartReport } from '../protocols/machine.ts';
import { SshAccess } from '../ssh/ssh-access.ts';
import type { SshShell } from '../ssh/ssh-session.ts';
import { NixosHelpers } from '../nixos/nixos.ts';
import { testbedImage, testbedSource, type BootDisk, type TestbedImage } from './testbed-source.ts';
import { fileIdentity, snapshotKey, type SnapshotFiles, type SnapshotStore } from './warm-start.ts';

/** Options of one machine instance. */
export interface QemuMachineOptions {
  /** Machine name: hostname of the testbed guest, log file names. Default: the profile's name. */
  name?: string;
  /** Where console logs go. Default: a fresh directory under the system temp dir. */
  logDir?: string;
  /** Overrides the profile's accelerator. */
  accel?: 'auto' | 'kvm' | 'tcg' | 'hvf';
  /** Called with every line of the serial console (for live reporters). */
  onConsoleLine?: (line: string) => void;
  /** Console checks of the scenario, on top of the profile's. */
  consoleChecks?: ConsoleCheckSettings;
  /** NICs on the case's fabric (harness/net/fabric.ts), in the order of the scenario's networks. */
  nics?: NicPlan[];
  /**
   * A host link: a restricted user-mode NIC (the guest reaches nothing through it) that only 127.0.0.1 forwards reach:
   * the guest's SSH server (ssh()) and any port forwardPort() asks for.
   */
  hostLink?: boolean;
}

/** How startWarm() will start a machine (prepareWarm). */
export type WarmPlan =
  | { kind: 'cold'; reason: string }
  | { kind: 'restore'; key: string; snap: SnapshotFiles }
  | { kind: 'build'; key: string; parts: Record<string, unknown>; done: (s: SnapshotFiles | undefined) => void }
  | { kind: 'wait'; key: string; wait: Promise<SnapshotFiles | undefined> };

/** Under KVM a guest prints within a second or two; this much silence on every console means KVM hangs it. */
export const KVM_SIGN_OF_LIFE_MS = 20_000;
/** A serial login prompt with no backdoor greeting this long after it means the image has no test instrumentation. */
export const LOGIN_WITHOUT_BACKDOOR_MS = 15_000;
/** A mebibyte. */
const MiB = 1024 * 1024;

/**
 * A QEMU VM: a Machine (harness/protocols/machine.ts) with every capability (screen, media, hostLink, net), which it
 * implements itself; it also exposes what only the runner and tests use (stop, warm starts, QMP).
 */
export class QemuMachine extends ShellMachine implements ManagedMachine, Power, Shell, Screen, Media, HostLink, FabricNet {
  readonly kind = 'vm' as const;
  readonly name: string;
  readonly profile: MachineProfile;
  readonly logDir: string;
  /** The serial console's log: every byte, timestamped. */
  readonly log: ConsoleLog;
  /** Guest boots so far: each start and each guest-initiated reset counts one. */
  boots = 0;
  facts: MachineFacts | undefined;
  /** The testbed boot disk this machine boots, if any: its entries say which fleetlab.entry markers exist. */
  bootDisk: BootDisk | undefined;
  private _state: MachineState = 'stopped';
  private proc: SupervisedProcess | undefined;
  private qmp: QmpClient | undefined;
  private runDir: string | undefined;
  private efiVars: string | undefined;
  /** Per machine instance: the disks' qcow2 overlays, kept across reboots and restarts, removed by stop(). */
  private stateDir: string | undefined;
  private disks: LaunchDisk[] | undefined;
  /** The serial-login shell channel's login, once per boot (profiles whose guest.shell is serial-login). */
  private readonly serialShell = new SerialShellStart({
    console: () => this.console((this.profile.guest.shell as { console: string }).console),
    login: (opts) => this.login(undefined, undefined, opts),
  });
  private readonly consoles = new Map<string, StreamConsole>();
  private readonly consoleLogs = new Map<string, ConsoleLog>();
  private readonly backdoor: BackdoorShell | undefined;
  protected readonly shell: ShellOps;
  private readonly opts: QemuMachineOptions;
  private readonly watcher: ConsoleWatcher;
  /** The life of the current QEMU process: every wait on this machine races it. */
  private life = new Lifeline();
  /** What fleetlab itself did to end the process, so its exit is expected: kill (quit/signals) or shutdown (guest poweroff). */
  private stopIntent: { how: 'kill' | 'shutdown'; by: string } | undefined;
  /** The stop under way, if any. */
  private killing: Promise<void> | undefined;
  /** From start() until the shell first answers: a console check then is an infrastructure error, not a test failure. */
  private booting = false;
  /** The 127.0.0.1 port forwarded to the guest's port 22 by the current QEMU process (hostLink). */
  private sshPort: number | undefined;
  /** Guest TCP ports forwarded from 127.0.0.1 by forwardPort(), guest port to host port; kept across QEMU restarts. */
  private readonly forwards = new Map<number, number>();
  /** The last login prompt the serial console printed since this boot began (cleared at each start and reset). */
  private promptThisBoot: string | undefined;
  /** The Pi firmware stand-in loads a boot loader (U-Boot), which reads the SD card again at each reset by itself. */
  private raspiBootloader = false;
  /** The testbed image this machine boots from its disk, if any (NixOS-shaped generations are built for it). */
  testbed: TestbedImage | undefined;
  /** The SSH user, key and host key of the testbed this machine boots, if it has them. */
  private testbedSsh: { user: string; privateKey: string; hostKey: string } | undefined;
  /** The host key ssh() expects: the testbed's, or the first one seen. */
  private readonly sshAccess: SshAccess;
  /** Bytes arrived on some console of the current process: the guest is alive. */
  private outputSeen = false;
  /** Console output or a shell session since the last counted boot: a reset before any sign of life is the same boot. */
  private aliveSinceBoot = false;
  /** The snapshot the next launch restores instead of booting (startWarm). */
  private restoreFrom: SnapshotFiles | undefined;
  /** The sources of this machine's disk overlays, for snapshot keys. */
  private diskSources: LaunchDisk[] = [];
  /** Media put in by useMedia() (an install flow): they replace the profile's disk. */
  private mediaSpec: MediaSpec | undefined;

  constructor(profile: MachineProfile, opts: QemuMachineOptions = {}) {
    super();
    this.profile = profile;
    this.opts = opts;
    this.name = opts.name ?? profile.name;
    if (opts.logDir) this.logDir = resolve(opts.logDir);
    else {
      this.logDir = join(tmpdir(), `fleetlab-logs-${this.name}-${process.pid}-${Date.now()}`);
      makeOwnedDirSync(this.logDir);
    }
    this.log = new ConsoleLog(join(this.logDir, `${this.name}.log`));
    this.sshAccess = new SshAccess({ name: this.name, note: (l) => this.log.note(l), life: () => this.life });
    this.log.onLine((l) => {
      if (/\blogin: *$/.test(l)) this.promptThisBoot = l;
    });
    if (opts.onConsoleLine) this.log.onLine(opts.onConsoleLine);
    this.log.onLine(() => (this.aliveSinceBoot = true));
    this.watcher = new ConsoleWatcher(consoleChecks(profile.consoleChecks, opts.consoleChecks), (hit) => this.onConsoleCheck(hit));
    const shell = profile.guest.shell;
    for (const c of profile.consoles) {
      if (shell.kind === 'backdoor' && c.name === shell.console) continue;
      // A serial-login shell shares its console: the console logs and expects, the shell reads its framed answers.
      const log = c.name === profile.serialConsole ? this.log : new ConsoleLog(join(this.logDir, `${this.name}.${c.name}.log`));
      this.consoleLogs.set(c.name, log);
      log.onLine((line) => this.watcher.line(c.name, line));
      this.consoles.set(c.name, new StreamConsole(c.name, this.name, log, () => this.life));
    }
    if (shell.kind !== 'none') {
      // The backdoor's console gets a log of its own: greetings, the shell's complaints and each answer's size.
      const channelLog = shell.kind === 'backdoor' ? new ConsoleLog(join(this.logDir, `${this.name}.${shell.console}.log`)) : undefined;
      if (channelLog) this.consoleLogs.set(shell.console, channelLog);
      this.backdoor = new BackdoorShell(this.name, { lastLines: () => this.log.lastLines(20), note: (t) => this.log.note(t), life: () => this.life, log: channelLog });
      this.backdoor.onSession(() => {
        this.aliveSinceBoot = true;
        this.emit('shell-session', this.backdoor!.sessions);
      });
    }
    const runner = this.backdoor ?? noShell(this.name);
    this.shell = new ShellOps(runner, () => this.log.lastLines(20));
  }

  /** Loads profile `name` from machines/ and makes a machine of it. */
  static async fromProfile(name: string, opts: QemuMachineOptions = {}): Promise<QemuMachine> {
    return new QemuMachine(await loadProfile(name), opts);
  }

  /** "machine main (a QEMU VM)": how messages name it. */
  get label(): string {
    return `machine ${this.name} (a QEMU VM)`;
  }
  /** Screenshots and keys: QEMU's display. */
  get screen(): Screen {
    return this;
  }
  /** Disks and CD-ROM, changed while off. */
  get media(): Media {
    return this;
  }
  /** 127.0.0.1 forwards to its ports (with hostLink: true or ssh: true in the scenario). */
  get hostLink(): HostLink {
    return this;
  }
  /** Addresses, MACs and the batman-adv mesh on the scenario's networks. */
  get net(): FabricNet {
    return this;
  }

  /**
   * Whether fleetlab gives the guest its name (the testbed reads it from the kernel command line or fw_cfg). Not on
   * the Pi's U-Boot boot, which boots extlinux.conf's own command line; nor on lab boards: there the system keeps its own.
   */
  get passesHostname(): boolean {
    return !(this.profile.boot.kind === 'testbed-disk' && this.profile.boot.layout === 'raspi-uboot');
  }

  get state(): MachineState {
    return this._state;
  }

  get powerState(): PowerState {
    return this._state === 'running' || this._state === 'starting' ? 'on' : 'off';
  }

  /** The QEMU process id while running. */
  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined;
  }

  /** Checks the host can run this profile: QEMU binary and firmware present. Throws ConfigurationError naming what to install. */
  checkHost(): void {
    const bin = this.profile.qemu.binary;
    if (!which(bin)) {
      const pkg = QEMU_PACKAGES[bin.split('/').pop()!];
      throw new ConfigurationError(
        `Machine ${this.name} (profile ${this.profile.name}) needs ${bin}, which is not installed.` +
          (pkg ? ` Install the Debian package ${pkg}: apt-get install ${pkg} (scripts/setup.sh does).` : ' Install QEMU for this architecture.'),
        { details: { field: 'qemu.binary', value: bin, package: pkg } },
      );
    }
    const fw = this.profile.firmware;
    const files = fw.kind === 'uefi' ? [fw.code, fw.vars] : fw.kind === 'bios-file' ? [fw.path] : [];
    for (const f of files) {
      if (!existsSync(f)) {
        const pkg = (fw as { package: string }).package;
        throw new ConfigurationError(
          `Machine ${this.name} (profile ${this.profile.name}) needs firmware ${f}, which is missing. Install the Debian package ${pkg}: apt-get install ${pkg}.`,
          { details: { field: 'firmware', value: f, package: pkg } },
        );
      }
    }
  }

  /**
   * Starts QEMU and the guest; resolves once the VM runs (use waitForShell() to wait for the guest). Under KVM it also
   * waits for the guest's first output: a guest silent for KVM_SIGN_OF_LIFE_MS is restarted under TCG when the
   * accelerator came from auto (and the probe's cache corrected), and is an infrastructure error when KVM was asked for.
   */
  async start(opts?: WaitOptions): Promise<void> {
    // A stop still under way (a QMP loss, a crash from another step) is finished first.
    if (this._state === 'stopping' && this.killing) await this.killing.catch(() => undefined);
    if (this._state !== 'stopped') throw new InfrastructureError(`machine ${this.name} is already ${this._state}; stop or crash it first`);
    const deadline = deadlineFrom(opts, 600_000, `start of ${this.name}`, 'pass { timeout } to start()');
    this.checkHost();
    this._state = 'starting';
    this.booting = true;
    try {
      const choice = await chooseAccel(this.opts.accel ?? this.profile.accel, this.profile.arch);
      if (choice.accel !== 'kvm') {
        await this.launch(choice.accel, choice.why, deadline, opts?.signal);
      } else {
        const silent = await this.launch('kvm', choice.why, deadline, opts?.signal).then(
          () => this.signOfLife(deadline, opts?.signal),
          (err: unknown) => {
            // QEMU refusing its own arguments is no KVM problem; anything else at start under KVM counts as KVM's.
            if (err instanceof FleetlabError && err.kind === 'configuration') throw err;
            return `QEMU failed to start: ${(err as Error).message.split('\n').slice(0, 4).join(' / ')}`;
          },
        );
        if (silent) {
          await this.kill('KVM fallback');
          const seen = `under -accel kvm ${silent}`;
          if (!choice.auto) {
            throw new InfrastructureError(
              `KVM: machine ${this.name} (profile ${this.profile.name}) was asked to run under KVM (${choice.why}), but ${seen}. KVM does not run this guest on this host; use --accel tcg (or auto, which falls back).`,
              { details: { machine: this.name, accel: 'kvm', seen } },
            );
          }
          const fallback = `auto chose KVM (its probe had passed), but ${seen}; restarted under TCG, and the probe's cache now says KVM is unusable`;
          this.log.note(fallback);
          await markKvmUnusable(`machine ${this.name} (profile ${this.profile.name}): ${seen} (the probe had passed earlier)`);
          await this.launch('tcg', `auto: ${fallback}`, deadline, opts?.signal);
          this.facts!.accelFallback = fallback;
        }
      }
      this.boots++;
      this.aliveSinceBoot = false;
      this._state = 'running';
      this.emit('state', this._state);
      if (this.profile.guest.shell.kind === 'none') this.booting = false;
    } catch (err) {
      await this.kill('a failed start').catch(() => undefined);
      if (this.runDir && !this.proc) await removeTempDir(this.runDir);
      this.runDir = undefined;
      this._state = 'stopped';
      throw err;
    }
  }

  /**
   * Starts the machine and waits for its shell, restoring a snapshot of its shape from `store` when there is one (a
   * warm start) and booting otherwise (a cold start). The first machine of a shape boots and leaves a snapshot for
   * the next; machines that need the same snapshot meanwhile wait for it. After a restore the shell channel is set up
   * anew, and the guest gets the host's clock, this machine's hostname, a fresh machine-id and new randomness: no
   * two restored machines look alike. A restore that fails is noted, its snapshot dropped, and the machine boots cold.
   * What rules a snapshot out (networks, an SSH forward, a CD-ROM, the Pi's firmware, a serial-login shell, a second
   * start of this machine) makes a cold start whose reason the report gives.
   */
  async startWarm(store: SnapshotStore, opts?: WaitOptions & { plan?: WarmPlan }): Promise<StartReport> {
    const deadline = deadlineFrom(opts, 600_000, `warm start of ${this.name}`, 'pass { timeout } to startWarm()');
    const signal = opts?.signal;
    const cold = async (reason: string, extra: Partial<StartReport> = {}): Promise<StartReport> => {
      const t = now();
      await this.start({ deadline, signal });
      await this.waitForShell({ deadline, signal });
      return this.reportStart({ mode: 'cold', ms: now() - t, reason, ...extra });
    };
    const plan = opts?.plan ?? (await this.prepareWarm(store));
    if (plan.kind === 'cold') return cold(plan.reason);
    const key = plan.key;
    let snap: SnapshotFiles | undefined;
    let waitedMs: number | undefined;
    if (plan.kind === 'restore') snap = plan.snap;
    else if (plan.kind === 'build') {
      // The first of its shape: boot, and leave the snapshot for the others.
      const t = now();
      let made: SnapshotFiles | undefined;
      try {
        await this.start({ deadline, signal });
        await this.waitForShell({ deadline, signal });
        const bootMs = now() - t;
        made = await this.saveSnapshot(store, key, plan.parts, bootMs, deadline).catch((err: unknown) => {
          this.log.note(`warm start: no snapshot taken: ${String(err)}`);
          return undefined;
        });
        return this.reportStart({ mode: 'cold', ms: now() - t, reason: made ? 'first of its shape: booted and saved the snapshot' : 'first of its shape: booted, but the snapshot could not be taken', snapshot: made ? key : undefined });
      } finally {
        plan.done(made);
      }
    } else {
      const tw = now();
      snap = await plan.wait;
      waitedMs = now() - tw;
      if (!snap) return cold('the machine that booted first could not take a snapshot', { waitedMs });
    }
    const tr = now();
    try {
      this.restoreFrom = snap;
      await this.start({ deadline, signal });
      this.backdoor!.resume();
      await this.waitForShell({ deadline: deadline.child(60_000, `shell of ${this.name} after a restore`), signal });
      await this.refreshIdentity(snap, { deadline, signal });
    } catch (err) {
      this.restoreFrom = undefined;
      if (signal?.aborted) throw err;
      const why = (err as Error).message.split('\n').slice(0, 3).join(' / ');
      this.log.note(`warm start: restoring snapshot ${key} failed (${why}); dropping it and booting cold`);
      await this.kill('a failed restore').catch(() => undefined);
      await store.discard(key);
      // The overlays pointed at the snapshot's disks: back to the images themselves, and to fresh variables.
      await this.rebaseDisks(this.diskSources, this.profile.firmware.kind === 'uefi' ? this.profile.firmware.vars : undefined);
      this.boots = 0;
      return cold('the restore failed', { restoreFailed: why, waitedMs });
    } finally {
      this.restoreFrom = undefined;
    }
    this.log.note(`warm start: restored snapshot ${key} in ${formatMs(now() - tr)} (made by ${snap.meta.madeBy}, whose boot is logged in ${snap.meta.bootLog}); the kernel's boot id is that boot's`);
    return this.reportStart({ mode: 'warm', ms: now() - tr, waitedMs, snapshot: key });
  }

  /**
   * Decides how startWarm() will start this machine: restore an existing snapshot, build it (boot and save), wait for
   * the machine building it, or boot cold and why. Deciding claims the build, so a runner calls it in plan order.
   */
  async prepareWarm(store: SnapshotStore): Promise<WarmPlan> {
    const ruledOut = this.warmRuledOut();
    if (ruledOut) return { kind: 'cold', reason: ruledOut };
    const choice = await chooseAccel(this.opts.accel ?? this.profile.accel, this.profile.arch);
    let parts: Record<string, unknown>;
    try {
      parts = await this.snapshotParts(choice.accel);
    } catch (err) {
      return { kind: 'cold', reason: `no snapshot key: ${(err as Error).message.split('\n')[0]}` };
    }
    const key = snapshotKey(parts);
    const snap = await store.find(key);
    if (snap) return { kind: 'restore', key, snap };
    const claim = store.claim(key);
    return claim.owner ? { kind: 'build', key, parts, done: claim.done } : { kind: 'wait', key, wait: claim.wait };
  }

  private reportStart(r: StartReport): StartReport {
    r.ms = Math.round(r.ms);
    if (r.waitedMs !== undefined) r.waitedMs = Math.round(r.waitedMs);
    if (this.facts) this.facts.start = r;
    this.log.note(`start: ${r.mode} in ${formatMs(r.ms)}${r.reason ? ` (${r.reason})` : ''}`);
    return r;
  }

  /** The MAC of the user-mode NIC that carries the SSH forward. */
  private sshMac(): string {
    return stableMac('ssh', this.name, 'ssh0');
  }

  /** This machine's NICs' MACs in QEMU's device order: the fabric's, then the SSH forward's. */
  private nicMacs(): string[] {
    return [...(this.opts.nics ?? []).map((n) => n.mac), ...(this.opts.hostLink ? [this.sshMac()] : [])];
  }

  /** Why this machine cannot be restored from (or saved to) a snapshot; undefined when it can. */
  private warmRuledOut(): string | undefined {
    if (this.boots > 0) return 'not its first start: its disks have moved on from any snapshot';
    if (this.profile.guest.shell.kind !== 'backdoor') return `its shell channel is ${this.profile.guest.shell.kind}, not the backdoor (a login cannot be carried across a restore)`;
    if (this.profile.firmware.kind === 'raspi') return "the Pi's firmware stand-in reads the SD card at every start";
    const testbed = this.profile.boot.kind === 'testbed' || this.profile.boot.kind === 'testbed-disk';
    if ((this.opts.nics?.length || this.opts.hostLink) && !testbed) return "it is on a network, and only fleetlab's testbed can take a machine's MACs and addresses after a restore (/etc/fleetlab/network)";
    const b = this.profile.boot;
    if ((b.kind === 'disk' && (b.media === 'cdrom' || /\.iso$/i.test(b.image))) ) return 'it boots from a CD-ROM';
    if (this.mediaSpec) return 'its media were changed (useMedia: an install flow)';
    return undefined;
  }

  /** Everything that shapes the machine, for its snapshot key: QEMU's full argv with per-instance paths and names replaced, and the identity of every file it reads. */
  private async snapshotParts(accel: string): Promise<Record<string, unknown>> {
    const boot = await this.resolveBoot(join(tmpdir(), 'fleetlab-no-run-dir'));
    const disks = (boot.disks ?? []).map((d, k) => ({ ...d, path: `$DISK${k}` }));
    const append = boot.append?.split(/\s+/).map((w) => (w === `fleetlab.hostname=${this.name}` ? 'fleetlab.hostname=$NAME' : w)).join(' ');
    // NICs as devices (model, count, order); their MACs, ports and addresses are this machine's, set after a restore.
    const nics = (this.opts.nics ?? []).map((_, i) => ({ mac: `$MAC${i}`, qemuPort: 0, switchPort: 0 }));
    const hostLink = this.opts.hostLink ? { hostPort: 0, mac: '$SSHMAC' } : undefined;
    const netConfig = nics.length || hostLink ? '$RUN/net.conf' : undefined;
    const argv = qemuArgv(this.profile, { name: '$NAME', runDir: '$RUN', accel: accel as 'kvm' | 'tcg' | 'hvf', efiVars: this.efiVars ? '$VARS' : undefined, ...boot, append, disks, fwCfgHostname: boot.fwCfgHostname ? '$NAME' : undefined, nics, hostLink, netConfig });
    const fw = this.profile.firmware;
    const files = [this.profile.qemu.binary.includes('/') ? this.profile.qemu.binary : (which(this.profile.qemu.binary) ?? this.profile.qemu.binary), boot.kernel, boot.initrd, boot.dtb, ...this.diskSources.map((d) => d.path), ...(fw.kind === 'uefi' ? [fw.code, fw.vars] : fw.kind === 'bios-file' ? [fw.path] : [])];
    return { v: 1, profile: this.profile, argv, files: await Promise.all(files.filter((f): f is string => !!f).map(fileIdentity)) };
  }

  /** Stops the VM, writes its migration stream and copies its disks and variables into the store, and lets it run on. */
  private async saveSnapshot(store: SnapshotStore, key: string, parts: unknown, bootMs: number, deadline: Deadline): Promise<SnapshotFiles> {
    const qmp = this.qmp!;
    const t = now();
    await qmp.execute('stop');
    try {
      const disks = (this.disks ?? []).filter((d) => d.media === 'disk').map((d) => d.path);
      const snap = await store.write(
        key,
        { profile: this.profile.name, madeBy: `${this.name} (${this.logDir})`, bootLog: this.log.path, bootMs: Math.round(bootMs), createdAt: new Date().toISOString(), parts, macs: this.nicMacs() },
        { disks, efiVars: this.efiVars },
        async (stateFile) => {
          await qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(stateFile)}` });
          await this.migrationDone('saving', deadline);
        },
      );
      this.log.note(`warm start: snapshot ${key} saved in ${formatMs(now() - t)}`);
      return snap;
    } finally {
      await qmp.execute('cont').catch(() => undefined);
      // The guest's clock stood still while it was stopped.
      await this.execute(`date -u -s '${utcDate()}' >/dev/null 2>&1; true`, { timeout: 30_000 }).catch(() => undefined);
    }
  }

  /** Feeds a paused QEMU started with -incoming defer the snapshot's state and waits until it is loaded. */
  private async incoming(proc: SupervisedProcess, snap: SnapshotFiles, deadline: Deadline, signal?: AbortSignal): Promise<void> {
    if (!existsSync(snap.state)) throw new InfrastructureError(`snapshot ${snap.meta.key} has no state file ${snap.state}`);
    await this.qmp!.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(snap.state)}` });
    await this.migrationDone('restoring', deadline, signal, proc);
  }

  /** Polls query-migrate until the migration completed; throws when it failed or QEMU exited. */
  private async migrationDone(what: string, deadline: Deadline, signal?: AbortSignal, proc?: SupervisedProcess): Promise<void> {
    const budget = deadline.child(120_000, `${what} the snapshot of ${this.name}`);
    let last = '';
    const r = await pollUntil(
      async () => {
        if (proc && !proc.running) throw new InfrastructureError(`QEMU of ${this.name} exited while ${what} a snapshot: ${proc.stderrTail().trim().split('\n').slice(-3).join(' / ') || 'no stderr'}`);
        const q = await this.qmp!.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
        last = q.status ?? 'none';
        if (q.status === 'completed') return true;
        if (q.status === 'failed' || q.status === 'cancelled') throw new InfrastructureError(`${what} the snapshot of ${this.name} failed: ${q['error-desc'] ?? q.status}`);
        return undefined;
      },
      { deadline: budget, intervalMs: 25, signal },
    );
    if (r.timedOut) throw new TimeoutError('infrastructure', { awaited: `${what} the snapshot (migration status: ${last})`, deadline: budget, machine: this.name, lastLines: this.log.lastLines(10) });
  }

  /** After a restore: the host's clock, this machine's hostname, a fresh machine-id, new randomness. */
  private async refreshIdentity(snap: SnapshotFiles, opts: WaitOptions): Promise<void> {
    const id = randomBytes(16).toString('hex');
    const seed = [...randomBytes(64)].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    const name = this.name;
    await this.succeed(
      [
        `date -u -s '${utcDate()}' >/dev/null`,
        `hostname ${shellQuote(name)} 2>/dev/null`,
        `{ [ -L /etc/hostname ] || printf '%s\\n' ${shellQuote(name)} > /etc/hostname; } 2>/dev/null`,
        `{ [ ! -e /etc/machine-id ] || [ -L /etc/machine-id ] || printf '%s\\n' ${id} > /etc/machine-id; } 2>/dev/null`,
        `printf '${seed}' > /dev/urandom`,
        'true',
      ].join('; '),
      opts,
    );
    // The NICs still carry the MACs of the machine that made the snapshot: each gets this machine's, then the
    // testbed sets its networks up again from what this QEMU passes (addresses, the mesh).
    const macs = this.nicMacs();
    if (macs.length) {
      const old = snap.meta.macs ?? [];
      if (old.length !== macs.length) throw new InfrastructureError(`snapshot ${snap.meta.key} has ${old.length} NIC(s), machine ${this.name} ${macs.length}`);
      const swap = macs.map((mac, i) => `for d in /sys/class/net/*; do [ "$(cat $d/address)" = ${old[i]} ] && ip link set \${d##*/} down && ip link set \${d##*/} address ${mac}; done`);
      await this.succeed([...swap, '/etc/fleetlab/network'].join('\n'), opts);
    }
  }

  /** One QEMU process: run dir, boot files, argv, spawn, QMP and consoles connected while paused, then cont. */
  private async launch(accel: 'kvm' | 'tcg' | 'hvf', why: string, deadline: Deadline, signal?: AbortSignal): Promise<void> {
    this.promptThisBoot = undefined;
    this.runDir = await makeTempDir(`fleetlab-${this.name.slice(0, 20)}-`);
    const boot = await this.resolveBoot(this.runDir);
    if (this.profile.firmware.kind === 'uefi' && !this.efiVars) {
      // Variables persist across this machine's reboots and restarts, fresh per machine instance.
      this.efiVars = join(this.logDir, `${this.name}.efivars.fd`);
      await copyFile(this.profile.firmware.vars, this.efiVars);
    }
    const nics = this.opts.nics ?? [];
    let netConfig: string | undefined;
    const hostLink = this.opts.hostLink ? { hostPort: await freeTcpPort(), mac: this.sshMac() } : undefined;
    this.sshPort = hostLink?.hostPort;
    const netLines = nics.map((n) => `${n.mac} ${n.address}/${n.prefix}${n.batman ? ' batman' : ''}\n`);
    // QEMU's user networking is 10.0.2.0/24 inside QEMU only; with restrict=on nothing gets out of it.
    if (hostLink) netLines.push(`${hostLink.mac} 10.0.2.15/24\n`);
    if (netLines.length) {
      const noNic = nicUnsupported(this.profile);
      if (noNic) throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}) is on a network or has SSH, but ${noNic}.`, { details: { machine: this.name } });
      netConfig = join(this.runDir, 'net.conf');
      await writeFile(netConfig, netLines.join(''));
    }
    const argv = qemuArgv(this.profile, { name: this.name, runDir: this.runDir, accel, efiVars: this.efiVars, ...boot, nics, netConfig, hostLink });
    const snap = this.restoreFrom;
    if (snap) {
      // The disks as they were at the snapshot (overlays on its copies), its EFI variables, and QEMU waiting for its state.
      await this.rebaseDisks(snap.disks.map((path) => ({ path, format: 'qcow2' })), snap.efiVars);
      argv.push('-incoming', 'defer');
    }
    this.log.note(`starting ${this.profile.qemu.binary} (${why})${snap ? `, restoring snapshot ${snap.meta.key}` : ''}`);
    this.life = new Lifeline();
    this.watcher.reset();
    this.stopIntent = undefined;
    this.outputSeen = false;
    const cmd = qemuCommand(this.profile.qemu.binary, argv);
    const proc = spawnSupervised('qemu', cmd.file, cmd.args, {
      onLine: (stream, line) => line.trim() && this.log.note(`qemu[${proc.pid}] ${stream}: ${line}`),
    });
    this.proc = proc;
    proc.exited.then(() => this.onExit(proc));
    try {
      await this.connect(proc, deadline, withLife(signal, this.life));
      if (snap) await this.incoming(proc, snap, deadline, withLife(signal, this.life));
      await this.qmp!.execute('cont');
      await this.restoreForwards();
    } catch (err) {
      // QEMU that exits while starting explains itself on stderr: that, not a socket error, is the message.
      if (proc.running && (await raceDeadline(proc.exited, 500)).timedOut) throw err;
      throw this.startError(proc);
    }
    this.facts = { profile: this.profile.name, arch: this.profile.arch, firmware: this.profile.firmware.kind, accel, accelReason: why, qemuVersion: this.qmp!.version };
  }

  /** QEMU's exit during start: a configuration error when it rejected its command line, else an infrastructure error. */
  private startError(proc: SupervisedProcess): FleetlabError {
    const exit = proc.exitStatus;
    const how = exit?.signal ? `signal ${exit.signal}` : `exit code ${exit?.exitCode}`;
    const stderr = proc.stderrTail().trim();
    // "qemu-system-x86_64: -device virtio-blk-pci,…: The bootindex 0 has already been used": an option it refused.
    const rejected = exit?.exitCode === 1 && /^\S*qemu-system-[\w-]+: -[a-z]/m.test(stderr) && !/\bkvm\b|KVM|MSR/i.test(stderr);
    const message = [
      `QEMU of machine ${this.name} (profile ${this.profile.name}) exited while starting (${how})${rejected ? ': it rejected its command line' : ''}.`,
      stderr ? `QEMU said:\n${stderr.split('\n').slice(-10).map((l) => `    ${l}`).join('\n')}` : "QEMU's stderr was empty.",
      `command: ${proc.argv.join(' ')}`,
    ].join('\n');
    const details = { machine: this.name, exitCode: exit?.exitCode, signal: exit?.signal, stderr };
    return rejected ? new ConfigurationError(message, { details }) : new InfrastructureError(message, { details });
  }

  /** Undefined once any console of the running process has printed; else what was seen instead, within KVM_SIGN_OF_LIFE_MS. */
  private async signOfLife(deadline: Deadline, signal?: AbortSignal): Promise<string | undefined> {
    const proc = this.proc;
    const wait = deadline.child(KVM_SIGN_OF_LIFE_MS, `first console output of ${this.name} under KVM`);
    const r = await pollUntil(() => (this.outputSeen || !proc?.running ? true : undefined), { deadline: wait, intervalMs: 20, signal });
    if (this.outputSeen) return undefined;
    if (!r.timedOut && proc && !proc.running) {
      const exit = proc.exitStatus;
      return `QEMU exited (${exit?.signal ?? `exit code ${exit?.exitCode}`}) before the guest printed anything: ${proc.stderrTail().trim().split('\n').slice(-2).join(' / ') || 'no stderr'}`;
    }
    return `the guest printed nothing on any console for ${formatMs(KVM_SIGN_OF_LIFE_MS)}`;
  }

  /** What QEMU boots: kernel files, or disks (as this machine's overlays) and the firmware finds the bootloader. */
  private async resolveBoot(runDir: string): Promise<{ kernel?: string; initrd?: string; dtb?: string; append?: string; disks?: LaunchDisk[]; fwCfgHostname?: string }> {
    const boot = this.profile.boot;
    const hostname = `fleetlab.hostname=${this.name}`;
    const log = (l: string) => this.log.note(l);
    if (boot.kind === 'testbed') {
      const img = await testbedImage(boot.image, this.profile.name, log);
      this.testbedSsh = img.ssh;
      return { kernel: img.kernel, initrd: img.initrd, append: `${boot.append} ${hostname}`.trim() };
    }
    if (boot.kind === 'kernel') {
      for (const [field, f] of [['boot.kernel', boot.kernel], ['boot.initrd', boot.initrd], ['boot.dtb', boot.dtb]] as const) {
        if (f && !existsSync(f)) throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}): ${field} ${f} does not exist.`, { details: { field, value: f } });
      }
      const disks = boot.image ? (this.disks ??= [await this.overlayOf(await this.userImage(boot.image))]) : undefined;
      return { kernel: boot.kernel, initrd: boot.initrd, dtb: boot.dtb, append: boot.append, disks, fwCfgHostname: this.name };
    }
    // A testbed disk profile says whose system (and SSH keys) the machine has, even when an install flow's media
    // (useMedia) replace the disk it would boot.
    const img = boot.kind === 'testbed-disk' ? await testbedImage(boot.image, this.profile.name, log) : undefined;
    if (img) {
      this.testbedSsh = img.ssh;
      this.testbed = img;
    }
    const profileDisk = async (): Promise<LaunchDisk> => {
      if (boot.kind !== 'testbed-disk') return this.userImage(boot.image, boot.format, boot.media);
      this.bootDisk = await testbedSource().bootDisk(img!, boot.layout, boot.append, { log });
      return { path: this.bootDisk.path, format: 'raw', media: 'disk' };
    };
    const disks = (this.disks ??= this.mediaSpec ? await this.mediaDisks(this.mediaSpec) : [await this.overlayOf(await profileDisk())]);
    if (this.profile.firmware.kind === 'raspi') return this.raspiBoot(disks, runDir, hostname);
    return { disks, fwCfgHostname: this.name };
  }

  /** The Pi's boot: fleetlab plays the firmware, reading config.txt and cmdline.txt from the SD card. */
  private async raspiBoot(disks: LaunchDisk[], runDir: string, hostname: string): Promise<{ kernel?: string; initrd?: string; dtb?: string; append?: string; disks: LaunchDisk[] }> {
    const fw = await raspiFirmwareBoot(disks[0]!.path, disks[0]!.format, runDir);
    this.log.note(`raspi firmware: kernel ${fw.config.kernel ?? 'kernel8.img'}, initramfs ${fw.config.initramfs ?? '-'}, device tree ${fw.dtb ? fw.dtb.split('/').pop() : '-'}`);
    // A boot loader as the "kernel" (U-Boot) reads the SD card itself at every reset; a Linux kernel does not.
    this.raspiBootloader = /u-boot/i.test(fw.config.kernel ?? '');
    return { kernel: fw.kernel, initrd: fw.initrd, dtb: fw.dtb, append: `${fw.append} ${hostname}`.trim(), disks };
  }

  /**
   * Media: what the machine boots from, changed while it is off (the Media protocol, as an SD mux or a USB stick is
   * on a board). `disk` replaces the profile's disk: `{ blank: bytes }` is an empty one, `{ image, size }` a copy of
   * an image (written through an overlay: the image itself is never written) on a disk of `size` bytes, as an image
   * written to a bigger card. `cdrom` puts an ISO in the CD-ROM drive, which boots after the (empty) disk.
   */
  async useMedia(media: MediaSpec): Promise<void> {
    if (this._state !== 'stopped') throw new InfrastructureError(`machine ${this.name}: its media can only be changed while it is off (it is ${this._state}); shut it down or crash() it first`);
    const where = `machine ${this.name} (profile ${this.profile.name})`;
    const sd = this.profile.qemu.diskBus === 'sd';
    const size = 'blank' in media.disk ? media.disk.blank : media.disk.size;
    if (size !== undefined && (!Number.isSafeInteger(size) || size < MiB || size % 512 !== 0)) throw new ConfigurationError(`${where}: disk size ${size} bytes: give a whole number of 512-byte sectors, at least 1 MiB`, { details: { field: 'disk.size', value: size } });
    if (sd && size !== undefined && (size & (size - 1)) !== 0) throw new ConfigurationError(`${where}: its SD card must be a power of two in size (QEMU's SD model); ${size} bytes is not`, { details: { field: 'disk.size', value: size } });
    if ('image' in media.disk && !existsSync(media.disk.image)) throw new ConfigurationError(`${where}: image ${media.disk.image} does not exist`, { details: { field: 'image', value: media.disk.image } });
    if (media.cdrom !== undefined) {
      if (sd) throw new ConfigurationError(`${where} has only an SD card slot; it has no CD-ROM drive for ${media.cdrom}`, { details: { field: 'cdrom', value: media.cdrom } });
      if (!existsSync(media.cdrom)) throw new ConfigurationError(`${where}: ISO ${media.cdrom} does not exist`, { details: { field: 'cdrom', value: media.cdrom } });
    }
    this.mediaSpec = { ...media, disk: { ...media.disk } };
    this.disks = undefined;
    this.diskSources = [];
  }

  /** Takes the ISO out of the CD-ROM drive (QMP eject, forced past the guest's tray lock): the next boot is from the disk. */
  async ejectCdrom(): Promise<void> {
    const k = (this.disks ?? []).findIndex((d) => d.media === 'cdrom');
    if (k < 0) throw new ConfigurationError(`machine ${this.name} has no CD-ROM in its drive to eject`);
    await this.requireQmp('eject the CD-ROM').execute('eject', { id: `cd${k}-dev`, force: true });
    this.log.note(`CD-ROM ejected (${this.disks![k]!.path})`);
    // A QEMU started again (crash(), start()) comes up without it too.
    this.disks = this.disks!.filter((d) => d.media !== 'cdrom');
    if (this.mediaSpec) this.mediaSpec = { ...this.mediaSpec, cdrom: undefined };
  }

  /** The disks useMedia() asked for: this machine's overlay (blank, or on the image) and the CD-ROM. */
  private async mediaDisks(m: MediaSpec): Promise<LaunchDisk[]> {
    let disk: LaunchDisk;
    if ('blank' in m.disk) {
      const overlay = await this.overlayPath();
      await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', overlay, String(m.disk.blank)], { timeout: 30_000 });
      this.log.note(`disk: blank, ${Math.round(m.disk.blank / MiB)} MiB (${overlay})`);
      disk = { path: overlay, format: 'qcow2', media: 'disk' };
    } else {
      disk = await this.overlayOf(await this.userImage(m.disk.image, m.disk.format, 'disk'), m.disk.size);
    }
    return m.cdrom ? [disk, { path: resolve(m.cdrom), format: 'raw', media: 'cdrom' }] : [disk];
  }

  /** A disk or ISO the user names, checked and with its format found. */
  private async userImage(image: string, format?: string, media?: 'disk' | 'cdrom'): Promise<LaunchDisk> {
    const path = resolve(image);
    if (!existsSync(path)) throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}): boot.image ${image} does not exist.`, { details: { field: 'boot.image', value: image } });
    return { path, format: format ?? (await imageInfo(path, 'boot.image')).format, media: media ?? (/\.iso$/i.test(path) ? 'cdrom' : 'disk') };
  }

  /** This machine's disk overlays made anew on `bases` (in disk order), and its EFI variable store copied from `efiVars`. */
  private async rebaseDisks(bases: Array<{ path: string; format: string }>, efiVars: string | undefined): Promise<void> {
    for (const [k, d] of (this.disks ?? []).filter((x) => x.media === 'disk').entries()) {
      await rm(d.path, { force: true });
      await createOverlay(bases[k]!.path, bases[k]!.format, d.path);
    }
    if (efiVars && this.efiVars) await copyFile(efiVars, this.efiVars);
  }

  /** A disk as this machine sees it: a qcow2 overlay of the image, of `size` bytes if given (ISOs attach read-only as they are). */
  private async overlayOf(source: LaunchDisk, size?: number): Promise<LaunchDisk> {
    if (source.media === 'cdrom') {
      if (this.profile.qemu.diskBus === 'sd') throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}) has only an SD card slot; it cannot boot the ISO ${source.path}.`, { details: { field: 'boot.image', value: source.path } });
      return source;
    }
    const overlay = await this.overlayPath();
    this.diskSources.push(source);
    await createOverlay(source.path, source.format, overlay, { size, powerOfTwo: this.profile.qemu.diskBus === 'sd' });
    this.log.note(`disk: overlay ${overlay} on ${source.path} (${source.format})${size ? `, a ${Math.round(size / MiB)} MiB disk` : ''}; the image itself is not written`);
    return { path: overlay, format: 'qcow2', media: 'disk' };
  }

  /** Where this machine's disk overlay lives (in its state dir, made on first use). */
  private async overlayPath(): Promise<string> {
    this.stateDir ??= await makeTempDir(`fleetlab-state-${this.name.slice(0, 20)}-`);
    return join(this.stateDir, `${this.name}.disk0.qcow2`);
  }

  /** Connects QMP and every console while the VM is paused, so no byte is missed. */
  private async connect(proc: SupervisedProcess, deadline: Deadline, signal?: AbortSignal): Promise<void> {
    const runDir = this.runDir!;
    const connectDeadline = deadline.child(30_000, `QEMU of ${this.name} to open its sockets`);
    const ready = await pollUntil(() => (!proc.running || existsSync(qmpSocket(runDir)) ? true : undefined), { deadline: connectDeadline, intervalMs: 20, signal });
    if (!proc.running) throw proc.exitError('exited right after it started');
    if (ready.timedOut) throw new TimeoutError('infrastructure', { awaited: `QEMU to create ${qmpSocket(runDir)}`, deadline: connectDeadline, machine: this.name, lastLines: proc.stderrTail().split('\n') });
    const qmp = await QmpClient.connect(qmpSocket(runDir), { deadline: connectDeadline, signal });
    this.qmp = qmp;
    qmp.on('event', (e: QmpEvent) => this.onQmpEvent(e));
    qmp.on('close', () => void this.onQmpClosed(proc, qmp));
    const shell = this.profile.guest.shell;
    for (const c of this.profile.consoles) {
      const sock = await connectUnix(consoleSocket(runDir, c.name), connectDeadline, signal);
      sock.on('data', () => (this.outputSeen = true));
      if (this.backdoor && shell.kind === 'backdoor' && c.name === shell.console) {
        this.backdoor.attach(sock);
        continue;
      }
      this.consoles.get(c.name)!.attach(sock);
      if (this.backdoor && shell.kind === 'serial-login' && c.name === shell.console) this.backdoor.attach(sock);
    }
    this.serialShell.reset();
  }

  private onQmpEvent(e: QmpEvent): void {
    if (e.event === 'RESET' && (e.data as { guest?: boolean } | undefined)?.guest) {
      // One reboot can raise several resets (the kernel tries more than one method) before the guest runs again.
      if (!this.aliveSinceBoot) return;
      this.aliveSinceBoot = false;
      this.promptThisBoot = undefined;
      this.boots++;
      this.log.note(`guest reset (boot ${this.boots})`);
      this.backdoor?.guestReset();
      this.emit('reset', this.boots);
    } else if (e.event === 'SHUTDOWN') {
      this.log.note(`guest shutdown (${String((e.data as { reason?: string } | undefined)?.reason ?? '')})`);
    }
  }

  /**
   * QMP closed while QEMU runs and fleetlab did not ask: the machine cannot be controlled any more, so it ends here.
   * A QEMU that died closes its socket a moment before its exit is seen: that is a death, told by onExit.
   */
  private async onQmpClosed(proc: SupervisedProcess, qmp: QmpClient): Promise<void> {
    if (this.proc !== proc || this.qmp !== qmp || this.stopIntent) return;
    if (!(await raceDeadline(proc.exited, 1000)).timedOut) return;
    if (this.proc !== proc || this.stopIntent) return;
    const how = 'its QMP connection closed while QEMU still ran, so fleetlab could not control it any more and stopped it';
    this.log.note(`QMP connection lost; stopping qemu[${proc.pid}]`);
    this.life.finish(new MachineDied(this.name, how, proc.stderrTail(), () => this.log.lastLines(20), undefined));
    this.emit('died', how);
    await this.kill('QMP loss').catch(() => undefined);
  }

  private onExit(proc: SupervisedProcess): void {
    if (this.proc !== proc) return;
    const exit = proc.exitStatus!;
    const intent = this.stopIntent;
    const clean = !exit.signal && exit.exitCode === 0;
    const expected = intent?.how === 'kill' || (intent?.how === 'shutdown' && clean);
    const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.exitCode}`;
    this.log.note(`qemu[${proc.pid}] exited (${how})${expected ? '' : ' unexpectedly'}`);
    const reason = expected ? `the machine was stopped (${intent!.by})` : `QEMU exited unexpectedly (${how})`;
    // The life ends first, so every wait fails with the death and what it awaited; then the streams close.
    this.life.finish(expected ? new MachineStopped(this.name, intent!.by) : new MachineDied(this.name, reason, proc.stderrTail(), () => this.log.lastLines(20), exit));
    for (const c of this.consoles.values()) c.detach(reason);
    this.backdoor?.detach(reason);
    this.qmp?.close();
    this.qmp = undefined;
    this.proc = undefined;
    this._state = 'stopped';
    if (this.runDir) void removeTempDir(this.runDir);
    this.runDir = undefined;
    this.emit('state', this._state);
    if (!expected) this.emit('died', `${reason}${proc.stderrTail().trim() ? `: ${proc.stderrTail().trim().split('\n').slice(-3).join(' / ')}` : ''}`);
  }

  /** A console check matched: the machine's life ends, so whatever waits on it fails now with the lines. */
  private onConsoleCheck(hit: ConsoleCheckHit): void {
    const kind = this.booting ? 'infrastructure' : 'test-failure';
    this.log.note(`console check "${hit.check.name}" fired on ${hit.console}: ${hit.line}`);
    this.life.finish(new ConsoleCheckFired(this.name, hit, kind));
    this.emit('console-check', hit);
  }

  /**
   * Runs `fn` with console check `name` silenced, for a step that provokes it on purpose (a panic test); resolves with
   * the matching lines once the check matched (fn's own outcome is then not awaited: the guest may never answer it).
   * Fails if the check did not match by the time fn has ended, or within the timeout.
   */
  expectConsoleCheck(name: string, fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit> {
    return this.watcher.expect(name, fn, opts, { machine: this.name, life: this.life, lastLines: () => this.log.lastLines(20) });
  }

  /** expectConsoleCheck('kernel-panic', fn): for a step that panics the guest on purpose. */
  expectPanic(fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit> {
    return this.expectConsoleCheck('kernel-panic', fn, opts);
  }

  /** Waits until the guest's shell channel answers. */
  async waitForShell(opts?: WaitOptions): Promise<void> {
    if (!this.backdoor) throw new ConfigurationError(`profile ${this.profile.name} has no shell channel (guest.shell.kind is none)`);
    const deadline = deadlineFrom(opts, 120_000, `shell of ${this.name} to come up`, 'pass { timeout } to waitForShell(), or --timeout-scale for a run');
    const signal = withLife(opts?.signal, this.life);
    if (this.profile.guest.shell.kind === 'serial-login') {
      if (!this.backdoor.isReady) await this.serialShell.start({ deadline, signal });
      await this.backdoor.waitReady({ deadline, signal });
    } else {
      const hint = this.loginPromptWithoutBackdoor(signal);
      try {
        await Promise.race([this.backdoor.waitReady({ deadline, signal }), hint.failed]);
      } finally {
        hint.cancel();
      }
    }
    this.booting = false;
  }

  /**
   * Rejects when the serial console shows a login prompt and no backdoor greets within LOGIN_WITHOUT_BACKDOOR_MS
   * after it: the image lacks the NixOS test instrumentation, and waiting the whole budget would only hide that.
   */
  private loginPromptWithoutBackdoor(signal?: AbortSignal): { failed: Promise<never>; cancel: () => void } {
    let timer: NodeJS.Timeout | undefined;
    let prompt = '';
    let fail!: (err: Error) => void;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => undefined);
    const isPrompt = (l: string) => /\blogin: *$/.test(l);
    const sessions = this.backdoor!.sessions;
    // The timer starts at the first prompt-like line of this boot; the message quotes the latest one (banners say
    // "login:" too). A backdoor that greeted, even if its setup is still under way on a loaded host, is no failure.
    const seen = (line: string) => {
      prompt = line.trim();
      if (timer || this.backdoor!.isReady) return;
      timer = setTimeout(() => {
        if (this.backdoor!.isReady || this.backdoor!.sessions > sessions || signal?.aborted) return;
        const shell = this.profile.guest.shell as { console: string };
        fail(
          new ConfigurationError(
            `Machine ${this.name} shows a login prompt on its serial console ${this.profile.serialConsole} ("${prompt}"), but no backdoor root shell greeted on ${shell.console} within ${formatMs(LOGIN_WITHOUT_BACKDOOR_MS)} after it: ` +
              `the image has no NixOS test instrumentation. Boot it with a profile whose guest.shell is { kind: 'serial-login', console: '${this.profile.serialConsole}' } and whose guest.login names a user and password the image accepts ` +
              `(see the README, "Serial-login shell channel"), or add the backdoor to the image (nix/ has a NixOS module for it).`,
            { details: { machine: this.name, prompt, lastLines: this.log.lastLines(20) } },
          ),
        );
      }, LOGIN_WITHOUT_BACKDOOR_MS);
    };
    // A prompt this boot printed before the wait began counts; one from before a crash or reset does not.
    if (this.promptThisBoot) seen(this.promptThisBoot);
    const off = this.log.onLine((l) => isPrompt(l) && seen(l));
    return {
      failed,
      cancel: () => {
        clearTimeout(timer);
        off();
      },
    };
  }

  /** A console by name (default: the serial console with kernel messages and the login). */
  console(name = this.profile.serialConsole): StreamConsole {
    const c = this.consoles.get(name);
    if (!c) throw new ConfigurationError(`machine ${this.name} has no console "${name}" (have: ${[...this.consoles.keys()].join(', ')})`);
    return c;
  }

  /** Waits for text matching `pattern` on the serial console. */
  waitForConsoleText(pattern: RegExp | string, opts?: WaitOptions): Promise<RegExpExecArray> {
    return this.console().expect(pattern, opts);
  }

  /** Writes text to the serial console. */
  sendConsole(text: string): Promise<void> {
    return this.console().write(text);
  }

  /** Logs in on the serial console (default user and password from the profile). */
  login(user?: string, password?: string, opts?: WaitOptions): Promise<void> {
    const u = user ?? this.profile.guest.login?.user;
    const p = password ?? this.profile.guest.login?.password;
    if (u === undefined || p === undefined) throw new ConfigurationError(`machine ${this.name}: no user/password given and profile ${this.profile.name} has no guest.login`);
    return serialLogin(this.console(), this.name, u, p, opts);
  }


  /** This machine's address on `network` (a network of the scenario it is on). */
  address(network: string): string {
    const nic = (this.opts.nics ?? []).find((n) => n.network === network);
    if (!nic) {
      const on = (this.opts.nics ?? []).map((n) => n.network);
      throw new ConfigurationError(`machine ${this.name} is not on network "${network}" (${on.length ? `it is on: ${on.join(', ')}` : 'it is on no network'}); declare it in the scenario's networks.`);
    }
    return nic.address;
  }

  /**
   * A 127.0.0.1 port forwarded to the guest's TCP `guestPort` over the machine's host link (the scenario's
   * `hostLink: true`, or `ssh: true`): added to the running QEMU (hostfwd_add) and again after every restart, on the
   * same host port while it is free. Only the host's loopback reaches it, and the guest reaches nothing through it.
   */
  async forwardPort(guestPort: number): Promise<number> {
    if (!Number.isInteger(guestPort) || guestPort < 1 || guestPort > 65535) throw new ConfigurationError(`forwardPort(${guestPort}): a guest TCP port is a whole number from 1 to 65535`);
    if (!this.opts.hostLink) throw new ConfigurationError(`machine ${this.name} has no host link to forward port ${guestPort} over; declare hostLink: true in the scenario (a restricted NIC that only 127.0.0.1 forwards reach)`);
    if (guestPort === 22 && this.sshPort) return this.sshPort;
    const known = this.forwards.get(guestPort);
    if (known !== undefined) return known;
    if (!this.qmp || this._state !== 'running') throw new InfrastructureError(`machine ${this.name} is not running; cannot forward its port ${guestPort}`);
    const hostPort = await freeTcpPort();
    await this.hostfwd(hostPort, guestPort);
    this.forwards.set(guestPort, hostPort);
    return hostPort;
  }

  /** Adds one forward to the running QEMU; its human monitor answers errors as text. */
  private async hostfwd(hostPort: number, guestPort: number): Promise<void> {
    const out = await this.qmp!.execute<string>('human-monitor-command', { 'command-line': `hostfwd_add ssh0 tcp:127.0.0.1:${hostPort}-:${guestPort}` });
    if (typeof out === 'string' && out.trim()) throw new InfrastructureError(`QEMU refused to forward 127.0.0.1:${hostPort} to port ${guestPort} of ${this.name}: ${out.trim()}`);
    this.log.note(`forward: 127.0.0.1:${hostPort} -> ${this.name}:${guestPort}`);
  }

  /** A new QEMU process has none of the forwards: the same host ports again, or new ones where they were taken. */
  private async restoreForwards(): Promise<void> {
    for (const [guestPort, hostPort] of this.forwards) {
      try {
        await this.hostfwd(hostPort, guestPort);
      } catch {
        const fresh = await freeTcpPort();
        await this.hostfwd(fresh, guestPort);
        this.forwards.set(guestPort, fresh);
      }
    }
  }

  /**
   * Where an SSH client outside fleetlab (ssh, nix copy, nixos-anywhere) reaches this machine: the restricted
   * 127.0.0.1 forward, the testbed's user and key (or none: bring your own), and the host key ssh() pinned (or the
   * testbed's), for a known_hosts line.
   */
  sshEndpoint(): { host: string; port: number; user: string; privateKey?: string; hostKey?: string } {
    if (!this.opts.hostLink) throw new ConfigurationError(`machine ${this.name} has no SSH forward; declare ssh: true (or hostLink: true) in the scenario (it gives each machine a restricted 127.0.0.1 forward to port 22)`);
    if (!this.sshPort || this._state !== 'running') throw new InfrastructureError(`machine ${this.name} is not running; cannot reach it over SSH`);
    return { host: '127.0.0.1', port: this.sshPort, user: this.testbedSsh?.user ?? 'root', privateKey: this.testbedSsh?.privateKey, hostKey: this.sshAccess.hostKey(this.testbedSsh?.hostKey) };
  }

  /** Whether the machine has a host link (ssh: true or hostLink: true): 127.0.0.1 forwards to its ports. */
  get hasHostLink(): boolean {
    return !!this.opts.hostLink;
  }

  /** `signal` joined with this machine's life: aborted when either ends (for a host process that works on the machine). */
  lifeSignal(signal?: AbortSignal): AbortSignal {
    return withLife(signal, this.life)!;
  }

  /** The SSH user and private key fleetlab's testbed accepts (undefined for other images: pass your own). */
  get sshIdentity(): { user: string; privateKey: string } | undefined {
    return this.testbedSsh ? { user: this.testbedSsh.user, privateKey: this.testbedSsh.privateKey } : undefined;
  }

  /**
   * An SSH session into the guest (ssh2), through the restricted forward the scenario's `ssh: true` gives the machine.
   * The testbed's user, key and host key are known; for other images pass user and privateKey. The host key is pinned:
   * the testbed's, else the first one seen; a different one fails unless `expectNewHostKey` (a reinstall) re-pins it.
   * Retries until the guest's server answers, within the timeout and the machine's life.
   */

  async ssh(opts: SshOptions = {}): Promise<SshShell> {
    if (!this.opts.hostLink) throw new ConfigurationError(`machine ${this.name} has no SSH forward; declare ssh: true (or hostLink: true) in the scenario (it gives each machine a restricted 127.0.0.1 forward to port 22)`);
    if (!this.sshPort || this._state !== 'running') throw new InfrastructureError(`machine ${this.name} is not running; cannot open SSH`);
    const t = this.testbedSsh;
    return this.sshAccess.open({ host: '127.0.0.1', port: this.sshPort, user: t?.user ?? 'root', privateKey: t?.privateKey, knownHostKey: t?.hostKey }, opts, { label: this.name, noKey: `machine ${this.name}: ssh() needs { user, privateKey } for an image that is not fleetlab's testbed` });
  }

  /** batman-adv helpers for this machine's mesh (bat0): originators, neighbours, next hops, routes. */
  get mesh(): BatmanMesh {
    return new BatmanMesh(this);
  }

  /** Waits until this machine's mesh has a route to `dest` (a machine on the same batman network, or an originator MAC). */
  waitForMeshRoute(dest: Machine | string, opts?: WaitOptions & { network?: string }): Promise<string> {
    const mac = typeof dest === 'string' ? dest : need(dest, 'net', `waitForMeshRoute(${dest.name})`).mac(opts?.network ?? this.meshNetwork());
    return this.mesh.waitForRoute(mac, opts);
  }

  /** The one batman network this machine is on. */
  meshNetwork(): string {
    const meshes = (this.opts.nics ?? []).filter((n) => n.batman);
    if (meshes.length !== 1) throw new ConfigurationError(`machine ${this.name} is on ${meshes.length} batman networks (${meshes.map((n) => n.network).join(', ') || 'none'}); name one`);
    return meshes[0]!.network;
  }

  /** The MAC of this machine's NIC on `network` (stable per scenario, machine and network): how a guest finds that NIC. */
  mac(network: string): string {
    this.address(network);
    return (this.opts.nics ?? []).find((n) => n.network === network)!.mac;
  }

  /** NixOS generations, updates and rollbacks on this machine (harness/nixos/nixos.ts). */
  get nixos(): NixosHelpers {
    this.nixosHelpers ??= new NixosHelpers(this);
    return this.nixosHelpers;
  }
  private nixosHelpers: NixosHelpers | undefined;

  /** Clean shutdown through the guest's poweroff command, then waits for QEMU to exit cleanly. */
  async shutdown(opts?: WaitOptions): Promise<void> {
    if (this._state === 'stopped') return;
    const deadline = deadlineFrom(opts, 120_000, `clean shutdown of ${this.name}`, 'pass { timeout } to shutdown()');
    const proc = this.proc!;
    const life = this.life;
    const awaited = `a clean shutdown ("${this.profile.guest.poweroffCommand}")`;
    this._state = 'stopping';
    this.stopIntent = { how: 'shutdown', by: 'shutdown()' };
    this.console().mark();
    try {
      if (this.backdoor?.isReady) await this.backdoor.sendBlind(this.profile.guest.poweroffCommand, { deadline });
      else await this.qmp?.execute('system_powerdown').catch(() => undefined);
    } catch (err) {
      if (!life.ended) throw err;
    }
    // Some machines halt without QEMU exiting (the Pi model has no power-off): the kernel's last words stand in.
    void this.console()
      .expect(/reboot: (Power down|System halted)/, { deadline })
      .then(
        async () => {
          if ((await raceDeadline(proc.exited, 2000)).timedOut) await this.kill('shutdown() after the guest halted');
        },
        () => undefined,
      );
    const gone = await raceDeadline(proc.exited, deadline, opts?.signal, awaited);
    if (gone.timedOut) {
      const err = new TimeoutError('infrastructure', { awaited: `QEMU to exit after "${this.profile.guest.poweroffCommand}"`, deadline, machine: this.name, lastLines: this.log.lastLines(20) });
      await this.kill('shutdown() timing out');
      throw err;
    }
    // QEMU gone, but not by the guest's power-off or fleetlab's hand: it died during the shutdown.
    const end = life.reason;
    if (end instanceof MachineDied) throw end.during(awaited);
  }

  /** Cuts the power at once (QMP quit, then signals): the disks keep whatever was written. */
  async crash(): Promise<void> {
    this.log.note('crash: power cut');
    await this.kill('crash()');
  }

  /** Reboots through the guest and waits until its shell answers again; resolves with the new boot count. */
  async reboot(opts?: WaitOptions): Promise<number> {
    const deadline = deadlineFrom(opts, 300_000, `reboot of ${this.name}`, 'pass { timeout } to reboot()');
    if (!this.backdoor) throw new ConfigurationError(`machine ${this.name}: reboot() needs a shell channel`);
    const signal = withLife(opts?.signal, this.life);
    const before = this.boots;
    if (this.profile.firmware.kind === 'raspi' && !this.raspiBootloader) return this.rebootThroughFirmware(deadline, signal, opts?.signal);
    let off = () => {};
    const session = new Promise<void>((resolve) => {
      off = this.backdoor!.onSession(() => {
        off();
        resolve();
      });
    });
    try {
      await this.backdoor.sendBlind(this.profile.guest.rebootCommand, { deadline, signal });
      if (this.profile.guest.shell.kind === 'serial-login') {
        this.serialShell.reset();
        await this.serialShell.start({ deadline, signal });
      }
      const back = await raceDeadline(session, deadline, signal, 'the guest to come back after reboot (a new shell session)');
      if (back.timedOut) throw new TimeoutError('infrastructure', { awaited: 'the guest to come back after reboot (a new shell session)', deadline, machine: this.name, lastLines: this.log.lastLines(20) });
    } finally {
      off();
    }
    await this.waitForShell({ deadline, signal: opts?.signal });
    if (this.boots === before) this.boots++; // a reset that QMP did not report as guest-initiated
    return this.boots;
  }

  /**
   * A reboot on a machine whose firmware fleetlab plays (the Pi's) and that boots a kernel straight from it: QEMU's
   * reset would start the kernel it was given again, while the real firmware reads config.txt and cmdline.txt anew. So the guest reboots, and at
   * its reset QEMU is stopped and started again with what the SD card says now: one boot, as on the board.
   */
  private async rebootThroughFirmware(deadline: Deadline, signal: AbortSignal | undefined, outer: AbortSignal | undefined): Promise<number> {
    const before = this.boots;
    const reset = new Promise<void>((resolve) => this.once('reset', () => resolve()));
    await this.backdoor!.sendBlind(this.profile.guest.rebootCommand, { deadline, signal });
    const r = await raceDeadline(reset, deadline, signal, 'the guest to reset after reboot');
    if (r.timedOut) throw new TimeoutError('infrastructure', { awaited: 'the guest to reset after reboot', deadline, machine: this.name, lastLines: this.log.lastLines(20) });
    this.log.note('reset: the Pi firmware stand-in reads the SD card again (QEMU restarted)');
    await this.kill('a reboot through the Pi firmware stand-in');
    await this.start({ deadline, signal: outer });
    await this.waitForShell({ deadline, signal: outer });
    this.boots = before + 1;
    return this.boots;
  }

  /** Writes a PNG of the screen (QMP screendump). */
  async screenshot(path: string): Promise<void> {
    const file = isAbsolute(path) ? path : resolve(path);
    await this.requireQmp('screenshot').execute('screendump', { filename: file, format: 'png' });
  }

  /** Presses key combos such as "ctrl-alt-delete", "ret", "a". */
  async sendKeys(...combos: string[]): Promise<void> {
    const qmp = this.requireQmp('sendKeys');
    for (const combo of combos) await qmp.execute('send-key', { keys: comboToQcodes(combo).map((k) => ({ type: 'qcode', data: k })) });
  }

  /** Types `text` as key presses. */
  async typeText(text: string): Promise<void> {
    const qmp = this.requireQmp('typeText');
    for (const keys of textToCombos(text)) await qmp.execute('send-key', { keys: keys.map((k) => ({ type: 'qcode', data: k })) });
  }

  /** QMP of the running machine, for commands fleetlab does not wrap. */
  requireQmp(what: string): QmpClient {
    if (!this.qmp) {
      if (this.life.ended) throw this.life.reason!.during(`QMP for ${what}`);
      throw new InfrastructureError(`machine ${this.name} is not running; cannot ${what}`);
    }
    return this.qmp;
  }

  /** Ensures QEMU is gone and closes the logs: the end of this machine object. */
  async stop(): Promise<void> {
    this.sshAccess.closeAll();
    await this.kill('stop()');
    if (this.stateDir) await removeTempDir(this.stateDir);
    this.stateDir = undefined;
    this.disks = undefined;
    await Promise.all([...new Set([this.log, ...this.consoleLogs.values()])].map((l) => l.close()));
  }

  /**
   * QMP quit, then SIGTERM, then SIGKILL; resolves when the process is gone. A QEMU that outlives SIGKILL by 10 s (a
   * vCPU stuck in the kernel under KVM) is reported as an infrastructure error rather than waited on forever.
   */
  private kill(by: string): Promise<void> {
    // One stop at a time: a second caller waits for the first.
    this.killing ??= this.stopProcess(by).finally(() => (this.killing = undefined));
    return this.killing;
  }

  private async stopProcess(by: string): Promise<void> {
    const proc = this.proc;
    if (!proc || !proc.running) {
      if (proc) await proc.exited;
      this._state = 'stopped';
      return;
    }
    this._state = 'stopping';
    this.stopIntent = { how: 'kill', by };
    this.qmp?.execute('quit').catch(() => undefined);
    const t0 = now();
    const gone = await raceDeadline(proc.exited, 2000);
    if (gone.timedOut) await proc.stop(2000);
    await proc.exited;
    if (now() - t0 > 5000) this.log.note(`qemu[${proc.pid}] took ${formatMs(now() - t0)} to stop`);
  }
}

function noShell(machine: string) {
  return {
    machineName: machine,
    execute(): Promise<ExecResult> {
      return Promise.reject(new ConfigurationError(`machine ${machine} has no shell channel (its profile's guest.shell.kind is none)`));
    },
  };
}

/** Now, UTC, as busybox and coreutils date -s both read it. */
function utcDate(): string {
  return new Date().toISOString().replace('T', ' ').slice(0, 19);
}
