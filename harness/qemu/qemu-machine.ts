// A QEMU virtual machine: supervised process, QMP, consoles, the shell channel and power, from a profile.
import { tmpdir } from 'node:os';
import type { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import type { ConsoleCheckHit, ConsoleCheckSettings } from '../console/console-checks.ts';
import { ConsoleSet } from '../console/console-set.ts';
import type { ConsoleLog } from '../console/console-log.ts';
import type { ExpectOptions } from '../protocols/console.ts';
import { serialLogin } from '../console/serial-login.ts';
import { SerialShellStart } from '../console/serial-shell.ts';
import type { StreamConsole } from '../console/stream-console.ts';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { makeOwnedDirSync, makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import type { FabricNet, HostLink, MachineState, ManagedMachine, SshOptions, StartReport, VmFacts } from '../protocols/machine.ts';
import type { Media, MediaSpec } from '../protocols/media.ts';
import type { Power, PowerState, RebootOptions } from '../protocols/power.ts';
import type { Monitor } from '../protocols/monitor.ts';
import type { Screen } from '../protocols/screen.ts';
import type { Shell } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { BackdoorShell, silenceOf } from '../shell/backdoor-shell.ts';
import { noShell, ShellOps } from '../shell/shell-ops.ts';
import { ShellMachine } from '../shell/shell-machine.ts';
import { deadlineFrom, raceDeadline, type Deadline } from '../time/deadline.ts';
import { Lifeline, withLife } from '../time/lifeline.ts';
import { chooseAccel } from './accel-probe.ts';
import { launchUnder } from './kvm-fallback.ts';
import { loadProfile } from './profile-loader.ts';
import { nicUnsupported, type MachineProfile } from './profile.ts';
import { BootMedia } from './boot-media.ts';
import { QemuProcess, type ProcessEnd } from './qemu-process.ts';
import { checkHostFor, loginPromptWithoutBackdoor, startError } from './start-diagnosis.ts';
import { FabricNics, writeNetConfig } from './fabric-nics.ts';
import { HostForwards } from './host-link.ts';
import { hostProcessOf, type HostProcess } from '../process/usage.ts';
import { QemuMonitor } from './qemu-monitor.ts';
import { QemuScreen } from './qemu-screen.ts';
import { MachineDied, MachineStopped } from './machine-end.ts';
import { qemuArgv } from './qemu-argv.ts';
import type { QmpClient, QmpEvent } from './qmp.ts';
import { stableMac, type NicPlan } from '../net/fabric.ts';
import { freeTcpPort } from '../net/free-port.ts';
import type { SshEndpoint } from '../nixos/nixos-machine.ts';
import { SshAccess } from '../ssh/ssh-access.ts';
import type { SshShell } from '../ssh/ssh-session.ts';
import { NixosHelpers } from '../nixos/nixos.ts';
import type { BootDisk, TestbedImage } from './testbed-source.ts';
import type { SnapshotStore } from './warm-start.ts';
import { WarmStarts, type WarmHost, type WarmPlan } from './warm-restore.ts';
import { QemuPower, type PowerHost } from './qemu-power.ts';

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

export type { MachineFacts, MachineState, StartReport } from '../protocols/machine.ts';
export type { WarmPlan } from './warm-restore.ts';

/**
 * A QEMU VM: a Machine (harness/protocols/machine.ts) with every capability (screen, media, hostLink, net, hostProcess).
 * A façade: it keeps the machine's state, consoles, shell channel and boots, and composes one part per other idea (the
 * QEMU process, boot media, warm starts, power, host link, fabric NICs, screen; docs/architecture.md lists them). It
 * also exposes what only the runner and tests use (stop, warm starts, QMP).
 */
export class QemuMachine extends ShellMachine implements ManagedMachine, Power, Shell, Media {
  readonly kind = 'vm' as const;
  readonly name: string;
  readonly profile: MachineProfile;
  readonly logDir: string;
  /** The serial console's log: every byte, timestamped. */
  readonly log: ConsoleLog;
  /** Guest boots so far: each start and each guest-initiated reset counts one. */
  boots = 0;
  facts: VmFacts | undefined;
  private _state: MachineState = 'stopped';
  /** The current QEMU process, if one runs. */
  private qemu: QemuProcess | undefined;
  /** What it boots from: kernel or disk overlays, install media, the Pi's firmware, the EFI variables. */
  private readonly media_: BootMedia;
  /** The serial-login shell channel's login, once per boot (profiles whose guest.shell is serial-login). */
  private readonly serialShell = new SerialShellStart({
    console: () => this.console((this.profile.guest.shell as { console: string }).console),
    login: (opts) => this.login(undefined, undefined, opts),
  });
  /** Its consoles, their logs and the console checks on them. */
  private readonly consoles: ConsoleSet;
  private readonly backdoor: BackdoorShell | undefined;
  protected readonly shell: ShellOps;
  private readonly opts: QemuMachineOptions;
  /** The life of the current QEMU process: every wait on this machine races it. */
  private life = new Lifeline();
  /** From start() until the shell first answers: a console check then is an infrastructure error, not a test failure. */
  private booting = false;
  /** 127.0.0.1 forwards to the guest's ports over its host link, the SSH port among them. */
  private readonly forwards: HostForwards;
  /** The last login prompt the serial console printed since this boot began (cleared at each start and reset). */
  private promptThisBoot: string | undefined;
  /** ssh() with the host key pinned: the testbed's, or the first one seen. */
  private readonly sshAccess: SshAccess;
  /** Console output or a shell session since the last counted boot: a reset before any sign of life is the same boot. */
  private aliveSinceBoot = false;
  /** Warm starts: snapshots restored instead of booting, or made after a boot. */
  private readonly warm: WarmStarts;
  /** Shutdown, waiting for the guest's own power-off, power cut and reboot. */
  private readonly power: QemuPower;

  constructor(profile: MachineProfile, opts: QemuMachineOptions = {}) {
    super();
    this.profile = profile;
    this.opts = opts;
    this.name = opts.name ?? profile.name;
    this.logDir = opts.logDir ? resolve(opts.logDir) : join(tmpdir(), `fleetlab-logs-${this.name}-${process.pid}-${Date.now()}`);
    if (!opts.logDir) makeOwnedDirSync(this.logDir);
    const shell = profile.guest.shell;
    // A serial-login shell shares its console: the console logs and expects, the shell reads its framed answers. The
    // backdoor's console is no console: the channel has it.
    const others = profile.consoles.map((c) => c.name).filter((n) => n !== profile.serialConsole && !(shell.kind === 'backdoor' && n === shell.console));
    this.consoles = new ConsoleSet({ machine: this.name, logDir: this.logDir, main: profile.serialConsole, others, checks: [profile.consoleChecks, opts.consoleChecks], life: () => this.life, booting: () => this.booting, note: (l) => this.log.note(l), onFired: (hit) => this.emit('console-check', hit) });
    this.log = this.consoles.log;
    this.media_ = new BootMedia({ name: this.name, profile, logDir: this.logDir, note: (l) => this.log.note(l) });
    const internals = this.internals();
    this.warm = new WarmStarts(internals);
    this.power = new QemuPower(internals);
    this.forwards = new HostForwards({ name: this.name, enabled: !!opts.hostLink, running: () => (this._state === 'running' ? this.qemu?.qmp : undefined), note: (l) => this.log.note(l) });
    this.net = new FabricNics(this.name, opts.nics ?? [], this);
    this.sshAccess = new SshAccess({ name: this.name, note: (l) => this.log.note(l), life: () => this.life });
    this.log.onLine((l) => void (/\blogin: *$/.test(l) && (this.promptThisBoot = l)));
    if (opts.onConsoleLine) this.log.onLine(opts.onConsoleLine);
    this.log.onLine(() => (this.aliveSinceBoot = true));
    if (shell.kind !== 'none') {
      // The backdoor's console gets a log of its own: greetings, the shell's complaints and each answer's size.
      const channelLog = shell.kind === 'backdoor' ? this.consoles.newLog(shell.console) : undefined;
      // A serial-login profile's silence limit: a guest that hangs mid-command ends the machine's life, as on a board.
      const silence = silenceOf(shell, (ms, limitS) => this.life.finish(new MachineDied(this.name, `its console ${shell.console} was silent for ${Math.round(ms / 1000)} s while a command ran (the limit is ${limitS} s: guest.shell.silenceLimitSeconds of profile ${profile.name}); the guest hangs?`, this.qemu?.proc.stderrTail(), () => this.log.lastLines(20), undefined)));
      this.backdoor = new BackdoorShell(this.name, { lastLines: () => this.log.lastLines(20), note: (t) => this.log.note(t), life: () => this.life, log: channelLog, silence, strict: shell.strict });
      this.backdoor.onSession(() => {
        this.aliveSinceBoot = true;
        this.emit('shell-session', this.backdoor!.sessions);
      });
    }
    const runner = this.backdoor ?? noShell(this.name, `its profile's guest.shell.kind is none`);
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
  readonly monitor: Monitor = new QemuMonitor(this); // the monitor capability: QMP events, QMP and HMP commands
  readonly screen: Screen = new QemuScreen(this); // screenshots and keys: QEMU's display
  readonly hostProcess: HostProcess = hostProcessOf(() => this.pid); // QEMU's pid, CPU time and memory
  /** Disks and CD-ROM, changed while off. */
  get media(): Media {
    return this;
  }
  /** 127.0.0.1 forwards to its ports (with hostLink: true or ssh: true in the scenario). */
  get hostLink(): HostLink {
    return this.forwards;
  }
  /** Addresses, MACs and the batman-adv mesh on the scenario's networks. */
  readonly net: FabricNet;

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
    return this.qemu?.running ? this.qemu.proc.pid : undefined;
  }

  /** Checks the host can run this profile: QEMU binary and firmware present. Throws ConfigurationError naming what to install. */
  checkHost(): void {
    checkHostFor(this.profile, this.name);
  }

  /**
   * Starts QEMU and the guest; resolves once the VM runs (use waitForShell() to wait for the guest). Under KVM it also
   * waits for the guest's first output (kvm-fallback.ts): a guest silent for KVM_SIGN_OF_LIFE_MS is restarted under TCG when the
   * accelerator came from auto (and the probe's cache corrected), and is an infrastructure error when KVM was asked for.
   */
  async start(opts?: WaitOptions): Promise<void> {
    // A stop still under way (a QMP loss, a crash from another step) is finished first.
    if (this._state === 'stopping') await this.qemu?.stopping?.catch(() => undefined);
    if (this._state !== 'stopped') throw new InfrastructureError(`machine ${this.name} is already ${this._state}; stop or crash it first`);
    const deadline = deadlineFrom(opts, 600_000, `start of ${this.name}`, 'pass { timeout } to start()');
    this.checkHost();
    this._state = 'starting';
    this.booting = true;
    try {
      const choice = await chooseAccel(this.opts.accel ?? this.profile.accel, this.profile.arch);
      const fallback = await launchUnder(choice, {
        name: this.name,
        profile: this.profile,
        note: (l) => this.log.note(l),
        launch: (accel, why) => this.launch(accel, why, deadline, opts?.signal),
        signOfLife: () => this.qemu!.signOfLife(deadline, opts?.signal),
        kill: (by) => this.kill(by),
      });
      if (fallback) this.facts!.accelFallback = fallback;
      this.boots++;
      this.aliveSinceBoot = false;
      this._state = 'running';
      this.emit('state', this._state);
      if (this.profile.guest.shell.kind === 'none') this.booting = false;
    } catch (err) {
      await this.kill('a failed start').catch(() => undefined);
      this._state = 'stopped';
      throw err;
    }
  }

  /**
   * Starts the machine and waits for its shell, restoring a snapshot of its shape from `store` when there is one (a
   * warm start) and booting otherwise (a cold start): harness/qemu/warm-restore.ts.
   */
  startWarm(store: SnapshotStore, opts?: WaitOptions & { plan?: WarmPlan }): Promise<StartReport> {
    return this.warm.start(store, opts);
  }

  /** Decides how startWarm() will start this machine; deciding claims the build, so a runner calls it in plan order. */
  prepareWarm(store: SnapshotStore): Promise<WarmPlan> {
    return this.warm.prepare(store);
  }

  /** Its state saved and restored (checkpoints): freeze, capture, thaw, restore; harness/qemu/warm-restore.ts. */
  get snapshots(): WarmStarts {
    return this.warm;
  }

  /** What the machine's parts (warm starts, power) reach of it: one object, made once. */
  private internals(): WarmHost & PowerHost {
    const m = this;
    return {
      name: m.name,
      profile: m.profile,
      logDir: m.logDir,
      log: m.log,
      get facts() {
        return m.facts;
      },
      get state() {
        return m._state;
      },
      get boots() {
        return m.boots;
      },
      set boots(n: number) {
        m.boots = n;
      },
      media: m.media_,
      get raspiBootloader() {
        return m.media_.raspiBootloader;
      },
      accel: m.opts.accel,
      nics: m.opts.nics ?? [],
      hostLink: !!m.opts.hostLink,
      get backdoor() {
        return m.backdoor;
      },
      serialShell: m.serialShell,
      qmp: () => m.requireQmp('a snapshot'),
      currentQmp: () => m.qemu?.qmp,
      process: () => m.qemu?.proc,
      life: () => m.life,
      console: () => m.console(),
      nicMacs: () => m.nicMacs(),
      beginShutdown: (by, stopping = true) => {
        if (stopping) m._state = 'stopping';
        m.qemu?.expectShutdown(by);
      },
      onceReset: (fn) => void m.once('reset', fn),
      start: (o) => m.start(o),
      waitForShell: (o) => m.waitForShell(o),
      resumeShell: () => m.backdoor!.resume(),
      kill: (by) => m.kill(by),
      // Warm restores' own commands: plain sh (shell/plain.ts).
      succeed: (c, o) => m.succeed(c, { ...o, strict: false }),
      execute: (c, o) => m.execute(c, { ...o, strict: false }),
    };
  }

  /** The MAC of the user-mode NIC that carries the SSH forward. */
  private sshMac(): string {
    return stableMac('ssh', this.name, 'ssh0');
  }

  /** This machine's NICs' MACs in QEMU's device order: the fabric's, then the SSH forward's. */
  nicMacs(): string[] {
    return [...(this.opts.nics ?? []).map((n) => n.mac), ...(this.opts.hostLink ? [this.sshMac()] : [])];
  }

  /** QEMU's command line for a process in `runDir`: boot files, EFI variables, NICs (their config file too), a snapshot to restore. */
  private async argv(runDir: string, accel: 'kvm' | 'tcg' | 'hvf'): Promise<string[]> {
    const boot = await this.media_.resolve(runDir);
    // Variables persist across this machine's reboots and restarts, fresh per machine instance.
    const efiVars = await this.media_.efiVarStore();
    const nics = this.opts.nics ?? [];
    const hostLink = this.opts.hostLink ? { hostPort: await freeTcpPort(), mac: this.sshMac() } : undefined;
    this.forwards.sshPort = hostLink?.hostPort;
    const noNic = nics.length || hostLink ? nicUnsupported(this.profile) : undefined;
    if (noNic) throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}) is on a network or has SSH, but ${noNic}.`, { details: { machine: this.name } });
    const netConfig = await writeNetConfig(runDir, nics, hostLink);
    const snap = this.warm.pending;
    const argv = qemuArgv(this.profile, { name: this.name, runDir, accel, efiVars, ...boot, nics, netConfig, hostLink, ram: this.warm.ramBacking() });
    if (snap) {
      // The disks as they were at the snapshot (overlays on its copies), its EFI variables, and QEMU waiting for its state.
      await this.media_.rebaseDisks(snap.disks.map((path) => ({ path, format: 'qcow2' })), snap.efiVars);
      argv.push('-incoming', 'defer');
    }
    return argv;
  }

  /** One QEMU process: run dir, boot files, argv, spawn, QMP and consoles connected while paused, then cont. */
  private async launch(accel: 'kvm' | 'tcg' | 'hvf', why: string, deadline: Deadline, signal?: AbortSignal): Promise<void> {
    this.promptThisBoot = undefined;
    const runDir = await makeTempDir(`fleetlab-${this.name.slice(0, 20)}-`);
    const argv = await this.argv(runDir, accel).catch(async (err: unknown) => {
      await removeTempDir(runDir);
      throw err;
    });
    const snap = this.warm.pending;
    this.log.note(`starting ${this.profile.qemu.binary} (${why})${snap ? `, restoring snapshot ${snap.meta.key}` : ''}`);
    this.life = new Lifeline();
    this.consoles.newLife();
    const qemu: QemuProcess = new QemuProcess({
      machine: this.name,
      binary: this.profile.qemu.binary,
      placement: this.hostProcess.placement,
      argv,
      runDir,
      note: (l) => this.log.note(l),
      onEvent: (e) => this.onQmpEvent(e),
      onQmpLost: (how) => {
        if (this.qemu !== qemu) return;
        this.life.finish(new MachineDied(this.name, how, qemu.proc.stderrTail(), () => this.log.lastLines(20), undefined));
        this.emit('died', how);
      },
      onExit: (end) => this.qemu === qemu && this.onExit(qemu, end),
    });
    this.qemu = qemu;
    try {
      const qmp = await qemu.connect(this.profile.consoles.map((c) => c.name), (name, sock) => this.attachConsole(name, sock), deadline, withLife(signal, this.life));
      this.serialShell.reset();
      if (snap) await this.warm.incoming(qemu.proc, snap, deadline, withLife(signal, this.life));
      await qmp.execute('cont');
      await this.forwards.restore(qmp);
      // How the machine came up in its case (a warm start, a checkpoint) stays across its later starts.
      this.facts = { kind: 'vm', profile: this.profile.name, arch: this.profile.arch, firmware: this.profile.firmware.kind, accel, accelReason: why, qemuVersion: qmp.version, start: this.facts?.start, checkpoint: this.facts?.checkpoint };
    } catch (err) {
      // QEMU that exits while starting explains itself on stderr: that, not a socket error, is the message.
      if (qemu.running && (await raceDeadline(qemu.proc.exited, 500)).timedOut) throw err;
      throw startError(qemu.proc, this.profile, this.name);
    }
  }

  /**
   * Media: what the machine boots from, changed while it is off (the Media protocol, as an SD mux or a USB stick is
   * on a board). `disk` replaces the profile's disk: `{ blank: bytes }` is an empty one, `{ image, size }` a copy of
   * an image (written through an overlay: the image itself is never written) on a disk of `size` bytes, as an image
   * written to a bigger card. `cdrom` puts an ISO in the CD-ROM drive, which boots after the (empty) disk.
   */
  async useMedia(media: MediaSpec): Promise<void> {
    if (this._state !== 'stopped') throw new InfrastructureError(`machine ${this.name}: its media can only be changed while it is off (it is ${this._state}); shut it down or crash() it first`);
    this.media_.use(media);
  }

  /** Takes the ISO out of the CD-ROM drive (QMP eject, forced past the guest's tray lock): the next boot is from the disk. */
  ejectCdrom(): Promise<void> {
    return this.media_.ejectCdrom((what) => this.requireQmp(what));
  }

  /** The testbed boot disk this machine boots, if any: its entries say which fleetlab.entry markers exist. */
  get bootDisk(): BootDisk | undefined {
    return this.media_.bootDisk;
  }

  /** The testbed image this machine boots from its disk, if any (NixOS-shaped generations are built for it). */
  get testbed(): TestbedImage | undefined {
    return this.media_.testbed;
  }

  /** A console's socket of a new QEMU process: the backdoor's to the shell channel, the others to their consoles. */
  private attachConsole(name: string, sock: Socket): void {
    const shell = this.profile.guest.shell;
    if (this.backdoor && shell.kind === 'backdoor' && name === shell.console) {
      this.backdoor.attach(sock);
      return;
    }
    this.consoles.get(name).attach(sock);
    // A serial-login shell shares its console: the console logs and expects, the shell reads its framed answers.
    if (this.backdoor && shell.kind === 'serial-login' && name === shell.console) this.backdoor.attach(sock);
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

  /** The current QEMU process exited: the life ends (a death or fleetlab's stop), then the streams close. */
  private onExit(qemu: QemuProcess, end: ProcessEnd): void {
    const { exit, intent } = end;
    const stderr = qemu.proc.stderrTail();
    const reason = end.expected ? `the machine was stopped (${intent!.by})` : `QEMU exited unexpectedly (${exit.signal ? `signal ${exit.signal}` : `exit code ${exit.exitCode}`})`;
    if (end.expected) this.life.finish(new MachineStopped(this.name, intent!.by));
    else this.life.finish(new MachineDied(this.name, reason, stderr, () => this.log.lastLines(20), exit));
    for (const c of this.consoles.all()) c.detach(reason);
    this.backdoor?.detach(reason);
    this.qemu = undefined;
    this._state = 'stopped';
    this.emit('state', this._state);
    if (!end.expected) this.emit('died', `${reason}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`);
  }

  /**
   * Runs `fn` with console check `name` silenced, for a step that provokes it on purpose (a panic test); resolves with
   * the matching lines once the check matched (fn's own outcome is then not awaited: the guest may never answer it).
   * Fails if the check did not match by the time fn has ended, or within the timeout.
   */
  expectConsoleCheck(name: string, fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit> {
    return this.consoles.expectCheck(name, fn, opts);
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
      const hint = loginPromptWithoutBackdoor({ name: this.name, profile: this.profile, log: this.log, backdoor: this.backdoor!, promptThisBoot: this.promptThisBoot, restoring: !!this.warm.pending }, signal);
      try {
        await Promise.race([this.backdoor.waitReady({ deadline, signal }), hint.failed]);
      } finally {
        hint.cancel();
      }
    }
    this.booting = false;
  }

  /** A console by name (default: the serial console with kernel messages and the login). */
  console(name = this.profile.serialConsole): StreamConsole {
    return this.consoles.get(name);
  }

  /** Waits for text matching `pattern` on the serial console: a RegExp, or a string read as one (`{ literal: true }`: plain text). */
  waitForConsoleText(pattern: RegExp | string, opts?: ExpectOptions): Promise<RegExpExecArray> {
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

  /**
   * Where an SSH client outside fleetlab (ssh, nix copy, nixos-anywhere) reaches this machine: the restricted
   * 127.0.0.1 forward, the testbed's user and key (or none: bring your own), and the host key ssh() pinned (or the
   * testbed's), for a known_hosts line.
   */
  sshEndpoint(): SshEndpoint {
    const t = this.media_.testbedSsh;
    return { ...this.forwards.sshServer('reach it over SSH'), user: t?.user ?? 'root', privateKey: t?.privateKey, hostKey: this.sshAccess.hostKey(t?.hostKey) };
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
    return this.media_.testbedSsh ? { user: this.media_.testbedSsh.user, privateKey: this.media_.testbedSsh.privateKey } : undefined;
  }

  /**
   * An SSH session into the guest (ssh2), through the restricted forward the scenario's `ssh: true` gives the machine.
   * The testbed's user, key and host key are known; for other images pass user and privateKey. The host key is pinned:
   * the testbed's, else the first one seen; a different one fails unless `expectNewHostKey` (a reinstall) re-pins it.
   * Retries until the guest's server answers, within the timeout and the machine's life.
   */
  async ssh(opts: SshOptions = {}): Promise<SshShell> {
    const t = this.media_.testbedSsh;
    return this.sshAccess.open({ ...this.forwards.sshServer('open SSH'), user: t?.user ?? 'root', privateKey: t?.privateKey, knownHostKey: t?.hostKey }, opts, { label: this.name, noKey: `machine ${this.name}: ssh() needs { user, privateKey } for an image that is not fleetlab's testbed` });
  }

  /** NixOS generations, updates and rollbacks on this machine (harness/nixos/nixos.ts). */
  get nixos(): NixosHelpers {
    return (this.nixosHelpers ??= new NixosHelpers(this));
  }
  private nixosHelpers: NixosHelpers | undefined;

  /** Clean shutdown through the guest's poweroff command, then waits for QEMU to exit cleanly. */
  shutdown(opts?: WaitOptions): Promise<void> {
    return this.power.shutdown(opts);
  }

  /** Waits until the guest powers itself off and QEMU exits (NTD's wait_for_shutdown); that exit is no death. */
  waitForShutdown(opts?: WaitOptions): Promise<void> {
    return this.power.waitForShutdown(opts);
  }

  /** Cuts the power at once (QMP quit, then signals): the disks keep whatever was written. */
  crash(): Promise<void> {
    return this.power.crash();
  }

  /** Reboots (`via`: the guest's command, Ctrl-Alt-Del, reset) and waits for its shell; resolves with the boot count. */
  reboot(opts?: RebootOptions): Promise<number> {
    return this.power.reboot(opts);
  }

  /** QMP of the running machine, for commands fleetlab does not wrap. */
  requireQmp(what: string): QmpClient {
    const qmp = this.qemu?.qmp;
    if (qmp) return qmp;
    if (this.life.ended) throw this.life.reason!.during(`QMP for ${what}`);
    throw new InfrastructureError(`machine ${this.name} is not running; cannot ${what}`);
  }

  /** Ensures QEMU is gone and closes the logs: the end of this machine object. */
  async stop(): Promise<void> {
    this.sshAccess.closeAll();
    await this.kill('stop()');
    await this.media_.clear();
    await this.consoles.close();
  }

  /** Stops the QEMU process, if one runs (QMP quit, then signals); resolves when it is gone. */
  private async kill(by: string): Promise<void> {
    const qemu = this.qemu;
    if (qemu?.running) this._state = 'stopping';
    await qemu?.kill(by);
    this._state = 'stopped';
  }
}
