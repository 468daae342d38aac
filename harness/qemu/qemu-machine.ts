// A QEMU virtual machine: supervised process, QMP, consoles, the shell channel and power, from a profile.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ConsoleLog } from '../console/console-log.ts';
import { serialLogin } from '../console/serial-login.ts';
import { StreamConsole } from '../console/stream-console.ts';
import { ConfigurationError, InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import { spawnSupervised, type SupervisedProcess } from '../process/supervisor.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import { connectUnix } from '../process/unix-socket.ts';
import type { Power, PowerState } from '../protocols/power.ts';
import type { Screen } from '../protocols/screen.ts';
import type { ExecOptions, ExecResult, Shell } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { BackdoorShell } from '../shell/backdoor-shell.ts';
import { ShellOps } from '../shell/shell-ops.ts';
import { deadlineFrom, pollUntil, raceDeadline, type Deadline } from '../time/deadline.ts';
import { ensureBootDisk, type BootDisk } from '../../machines/testbed/boot-disk.ts';
import { ensureTestbed } from '../../machines/testbed/build.ts';
import { testbedRecipes } from '../../machines/testbed/index.ts';
import { chooseAccel } from './accel-probe.ts';
import { QEMU_PACKAGES, which } from './host-packages.ts';
import { loadProfile } from './profile-loader.ts';
import type { MachineProfile } from './profile.ts';
import { createOverlay, imageInfo } from './disk-overlay.ts';
import { consoleSocket, qemuArgv, qmpSocket, type LaunchDisk } from './qemu-argv.ts';
import { raspiFirmwareBoot } from './raspi-firmware.ts';
import { comboToQcodes, textToCombos } from './qemu-keys.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';

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
}

/** Lifecycle of the QEMU process. */
export type MachineState = 'stopped' | 'starting' | 'running' | 'stopping';

/** Facts about a started machine, for reports: profile, accelerator actually used, QEMU version. */
export interface MachineFacts {
  profile: string;
  arch: string;
  firmware: string;
  accel: string;
  accelReason: string;
  qemuVersion: string;
}

/** A QEMU VM that implements the Power, Shell and Screen protocols and exposes its consoles. */
export class QemuMachine extends EventEmitter implements Power, Shell, Screen {
  readonly name: string;
  readonly profile: MachineProfile;
  readonly logDir: string;
  /** The serial console's log: every byte, timestamped. */
  readonly log: ConsoleLog;
  /** Guest boots so far: each start and each guest-initiated reset counts one. */
  boots = 0;
  facts: MachineFacts | undefined;
  private _state: MachineState = 'stopped';
  private proc: SupervisedProcess | undefined;
  private qmp: QmpClient | undefined;
  private runDir: string | undefined;
  private efiVars: string | undefined;
  /** Per machine instance: the disks' qcow2 overlays, kept across reboots and restarts, removed by stop(). */
  private stateDir: string | undefined;
  private disks: LaunchDisk[] | undefined;
  /** The testbed boot disk this machine boots, if any: its entries say which fleetlab.entry markers exist. */
  bootDisk: BootDisk | undefined;
  private serialShellStart: Promise<void> | undefined;
  private readonly consoles = new Map<string, StreamConsole>();
  private readonly consoleLogs = new Map<string, ConsoleLog>();
  private readonly backdoor: BackdoorShell | undefined;
  private readonly shell: ShellOps;
  private readonly opts: QemuMachineOptions;
  /** Console output or a shell session since the last counted boot: a reset before any sign of life is the same boot. */
  private aliveSinceBoot = false;

  constructor(profile: MachineProfile, opts: QemuMachineOptions = {}) {
    super();
    this.profile = profile;
    this.opts = opts;
    this.name = opts.name ?? profile.name;
    this.logDir = resolve(opts.logDir ?? join(tmpdir(), 'fleetlab-logs', `${this.name}-${process.pid}-${Date.now()}`));
    this.log = new ConsoleLog(join(this.logDir, `${this.name}.log`));
    if (opts.onConsoleLine) this.log.onLine(opts.onConsoleLine);
    this.log.onLine(() => (this.aliveSinceBoot = true));
    for (const c of profile.consoles) {
      if (profile.guest.shell.kind === 'backdoor' && c.name === profile.guest.shell.console) continue;
      // A serial-login shell shares its console: the console logs and expects, the shell reads its framed answers.
      const log = c.name === profile.serialConsole ? this.log : new ConsoleLog(join(this.logDir, `${this.name}.${c.name}.log`));
      this.consoleLogs.set(c.name, log);
      this.consoles.set(c.name, new StreamConsole(c.name, this.name, log));
    }
    if (profile.guest.shell.kind !== 'none') {
      this.backdoor = new BackdoorShell(this.name, { lastLines: () => this.log.lastLines(20), note: (t) => this.log.note(t) });
      this.backdoor.onSession(() => {
        this.aliveSinceBoot = true;
        this.emit('shell-session', this.backdoor!.sessions);
      });
    }
    this.shell = new ShellOps(this.backdoor ?? noShell(this.name), () => this.log.lastLines(20));
  }

  /** Loads profile `name` from machines/ and makes a machine of it. */
  static async fromProfile(name: string, opts: QemuMachineOptions = {}): Promise<QemuMachine> {
    return new QemuMachine(await loadProfile(name), opts);
  }

  get machineName(): string {
    return this.name;
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

  /** Starts QEMU and the guest; resolves once the VM runs (use waitForShell() to wait for the guest). */
  async start(opts?: WaitOptions): Promise<void> {
    if (this._state !== 'stopped') throw new InfrastructureError(`machine ${this.name} is already ${this._state}; stop or crash it first`);
    const deadline = deadlineFrom(opts, 600_000, `start of ${this.name}`, 'pass { timeout } to start()');
    this.checkHost();
    this._state = 'starting';
    try {
      this.runDir = await makeTempDir(`fleetlab-${this.name.slice(0, 20)}-`);
      const boot = await this.resolveBoot(this.runDir);
      const { accel, why } = await chooseAccel(this.opts.accel ?? this.profile.accel, this.profile.arch);
      if (this.profile.firmware.kind === 'uefi' && !this.efiVars) {
        // Variables persist across this machine's reboots and restarts, fresh per machine instance.
        this.efiVars = join(this.logDir, `${this.name}.efivars.fd`);
        await copyFile(this.profile.firmware.vars, this.efiVars);
      }
      const argv = qemuArgv(this.profile, { name: this.name, runDir: this.runDir, accel, efiVars: this.efiVars, ...boot });
      this.log.note(`starting ${this.profile.qemu.binary} (${why})`);
      const proc = spawnSupervised('qemu', this.profile.qemu.binary, argv, {
        onLine: (stream, line) => line.trim() && this.log.note(`qemu[${proc.pid}] ${stream}: ${line}`),
      });
      this.proc = proc;
      proc.exited.then(() => this.onExit(proc));
      await this.connect(proc, deadline, opts?.signal);
      this.facts = {
        profile: this.profile.name,
        arch: this.profile.arch,
        firmware: this.profile.firmware.kind,
        accel,
        accelReason: why,
        qemuVersion: this.qmp!.version,
      };
      await this.qmp!.execute('cont');
      this.boots++;
      this.aliveSinceBoot = false;
      this._state = 'running';
      this.emit('state', this._state);
    } catch (err) {
      await this.kill();
      if (this.runDir) await removeTempDir(this.runDir);
      throw err;
    }
  }

  /** What QEMU boots: kernel files, or disks (as this machine's overlays) and the firmware finds the bootloader. */
  private async resolveBoot(runDir: string): Promise<{ kernel?: string; initrd?: string; dtb?: string; append?: string; disks?: LaunchDisk[]; fwCfgHostname?: string }> {
    const boot = this.profile.boot;
    const hostname = `fleetlab.hostname=${this.name}`;
    const log = (l: string) => this.log.note(l);
    const testbed = async (name: string) => {
      const recipe = testbedRecipes[name];
      if (!recipe) throw new ConfigurationError(`Profile ${this.profile.name}: boot.image "${name}" is no testbed recipe (have: ${Object.keys(testbedRecipes).join(', ')}).`, { details: { field: 'boot.image', value: name } });
      return ensureTestbed(recipe, { log });
    };
    if (boot.kind === 'testbed') {
      const img = await testbed(boot.image);
      return { kernel: img.kernel, initrd: img.initrd, append: `${boot.append} ${hostname}`.trim() };
    }
    if (boot.kind === 'kernel') {
      for (const [field, f] of [['boot.kernel', boot.kernel], ['boot.initrd', boot.initrd], ['boot.dtb', boot.dtb]] as const) {
        if (f && !existsSync(f)) throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}): ${field} ${f} does not exist.`, { details: { field, value: f } });
      }
      const disks = boot.image ? (this.disks ??= [await this.overlayOf(await this.userImage(boot.image))]) : undefined;
      return { kernel: boot.kernel, initrd: boot.initrd, dtb: boot.dtb, append: boot.append, disks };
    }
    let source: LaunchDisk;
    if (boot.kind === 'testbed-disk') {
      this.bootDisk = await ensureBootDisk(await testbed(boot.image), boot.layout, boot.append, { log });
      source = { path: this.bootDisk.path, format: 'raw', media: 'disk' };
    } else {
      source = await this.userImage(boot.image, boot.format, boot.media);
    }
    const disks = (this.disks ??= [await this.overlayOf(source)]);
    if (this.profile.firmware.kind === 'raspi') {
      const fw = await raspiFirmwareBoot(disks[0]!.path, disks[0]!.format, runDir);
      log(`raspi firmware: kernel ${fw.config.kernel ?? 'kernel8.img'}, initramfs ${fw.config.initramfs ?? '-'}, device tree ${fw.dtb ? fw.dtb.split('/').pop() : '-'}`);
      return { kernel: fw.kernel, initrd: fw.initrd, dtb: fw.dtb, append: `${fw.append} ${hostname}`.trim(), disks };
    }
    return { disks, fwCfgHostname: this.name };
  }

  /** A disk or ISO the user names, checked and with its format found. */
  private async userImage(image: string, format?: string, media?: 'disk' | 'cdrom'): Promise<LaunchDisk> {
    const path = resolve(image);
    if (!existsSync(path)) throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}): boot.image ${image} does not exist.`, { details: { field: 'boot.image', value: image } });
    return { path, format: format ?? (await imageInfo(path, 'boot.image')).format, media: media ?? (/\.iso$/i.test(path) ? 'cdrom' : 'disk') };
  }

  /** A disk as this machine sees it: a qcow2 overlay of the image (ISOs attach read-only as they are). */
  private async overlayOf(source: LaunchDisk): Promise<LaunchDisk> {
    if (source.media === 'cdrom') {
      if (this.profile.qemu.diskBus === 'sd') throw new ConfigurationError(`Machine ${this.name} (profile ${this.profile.name}) has only an SD card slot; it cannot boot the ISO ${source.path}.`, { details: { field: 'boot.image', value: source.path } });
      return source;
    }
    this.stateDir ??= await makeTempDir(`fleetlab-state-${this.name.slice(0, 20)}-`);
    const overlay = join(this.stateDir, `${this.name}.disk0.qcow2`);
    await createOverlay(source.path, source.format, overlay, { powerOfTwo: this.profile.qemu.diskBus === 'sd' });
    this.log.note(`disk: overlay ${overlay} on ${source.path} (${source.format}); the image itself is not written`);
    return { path: overlay, format: 'qcow2', media: 'disk' };
  }

  /** Connects QMP and every console while the VM is paused, so no byte is missed. */
  private async connect(proc: SupervisedProcess, deadline: Deadline, signal?: AbortSignal): Promise<void> {
    const runDir = this.runDir!;
    const connectDeadline = deadline.child(30_000, `QEMU of ${this.name} to open its sockets`);
    const ready = await pollUntil(() => (!proc.running || existsSync(qmpSocket(runDir)) ? true : undefined), { deadline: connectDeadline, intervalMs: 20, signal });
    if (!proc.running) throw proc.exitError('exited right after it started');
    if (ready.timedOut) throw new TimeoutError('infrastructure', { awaited: `QEMU to create ${qmpSocket(runDir)}`, deadline: connectDeadline, machine: this.name, lastLines: proc.stderrTail().split('\n') });
    this.qmp = await QmpClient.connect(qmpSocket(runDir), { deadline: connectDeadline, signal });
    this.qmp.on('event', (e: QmpEvent) => this.onQmpEvent(e));
    const shell = this.profile.guest.shell;
    for (const c of this.profile.consoles) {
      const sock = await connectUnix(consoleSocket(runDir, c.name), connectDeadline, signal);
      if (this.backdoor && shell.kind === 'backdoor' && c.name === shell.console) {
        this.backdoor.attach(sock);
        continue;
      }
      this.consoles.get(c.name)!.attach(sock);
      if (this.backdoor && shell.kind === 'serial-login' && c.name === shell.console) this.backdoor.attach(sock);
    }
    this.serialShellStart = undefined;
  }

  private onQmpEvent(e: QmpEvent): void {
    if (e.event === 'RESET' && (e.data as { guest?: boolean } | undefined)?.guest) {
      // One reboot can raise several resets (the kernel tries more than one method) before the guest runs again.
      if (!this.aliveSinceBoot) return;
      this.aliveSinceBoot = false;
      this.boots++;
      this.log.note(`guest reset (boot ${this.boots})`);
      this.emit('reset', this.boots);
    } else if (e.event === 'SHUTDOWN') {
      this.log.note(`guest shutdown (${String((e.data as { reason?: string } | undefined)?.reason ?? '')})`);
    }
  }

  private onExit(proc: SupervisedProcess): void {
    if (this.proc !== proc) return;
    const exit = proc.exitStatus!;
    const expected = this._state === 'stopping';
    const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.exitCode}`;
    this.log.note(`qemu[${proc.pid}] exited (${how})${expected ? '' : ' unexpectedly'}`);
    const reason = expected ? 'the machine was stopped' : `QEMU exited unexpectedly (${how})${proc.stderrTail().trim() ? `: ${proc.stderrTail().trim().split('\n').slice(-3).join(' / ')}` : ''}`;
    for (const c of this.consoles.values()) c.detach(reason);
    this.backdoor?.detach(reason);
    this.qmp?.close();
    this.qmp = undefined;
    this.proc = undefined;
    this._state = 'stopped';
    if (this.runDir) void removeTempDir(this.runDir);
    this.runDir = undefined;
    this.emit('state', this._state);
    if (!expected) this.emit('died', reason);
  }

  /** Waits until the guest's shell channel answers. */
  async waitForShell(opts?: WaitOptions): Promise<void> {
    if (!this.backdoor) throw new ConfigurationError(`profile ${this.profile.name} has no shell channel (guest.shell.kind is none)`);
    if (this.profile.guest.shell.kind === 'serial-login' && !this.backdoor.isReady) await this.startSerialShell(opts);
    await this.backdoor.waitReady(opts);
  }

  /**
   * Logs in on the shell's serial console and turns the login shell into the framed shell channel, once per boot:
   * kernel messages are quieted (they would land inside answers), the tty goes raw, and a shell reads the tty as
   * its script, greeting like NixOS's backdoor.
   */
  private startSerialShell(opts?: WaitOptions): Promise<void> {
    const shell = this.profile.guest.shell as { console: string };
    this.serialShellStart ??= (async () => {
      const deadline = deadlineFrom(opts, 300_000, `serial-login shell of ${this.name}`, 'pass { timeout } to waitForShell()');
      await this.login(undefined, undefined, { deadline, signal: opts?.signal });
      // The banner is split in the command so the tty's echo of it cannot pass for the greeting.
      await this.console(shell.console).write(`exec sh -c 'dmesg -n 1 2>/dev/null; stty raw -echo; printf "Spawning backdoor %s\\n" "root shell..."; PS1= exec /bin/sh "$(tty)"'\n`);
    })();
    this.serialShellStart.catch(() => (this.serialShellStart = undefined));
    return this.serialShellStart;
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

  execute(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.shell.execute(command, opts);
  }
  succeed(command: string, opts?: ExecOptions): Promise<string> {
    return this.shell.succeed(command, opts);
  }
  fail(command: string, opts?: ExecOptions): Promise<string> {
    return this.shell.fail(command, opts);
  }
  waitUntilSucceeds(command: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string> {
    return this.shell.waitUntilSucceeds(command, opts);
  }
  waitUntilFails(command: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string> {
    return this.shell.waitUntilFails(command, opts);
  }
  waitForFile(path: string, opts?: ExecOptions): Promise<void> {
    return this.shell.waitForFile(path, opts);
  }
  waitForOpenPort(port: number, opts?: ExecOptions): Promise<void> {
    return this.shell.waitForOpenPort(port, opts);
  }

  /** The guest kernel's boot id: changes on every boot. */
  async bootId(opts?: ExecOptions): Promise<string> {
    return (await this.succeed('cat /proc/sys/kernel/random/boot_id', opts)).trim();
  }

  /** Clean shutdown through the guest's poweroff command, then waits for QEMU to exit. */
  async shutdown(opts?: WaitOptions): Promise<void> {
    if (this._state === 'stopped') return;
    const deadline = deadlineFrom(opts, 120_000, `clean shutdown of ${this.name}`, 'pass { timeout } to shutdown()');
    const proc = this.proc!;
    this._state = 'stopping';
    this.console().mark();
    if (this.backdoor?.isReady) await this.backdoor.sendBlind(this.profile.guest.poweroffCommand, { deadline });
    else await this.qmp?.execute('system_powerdown').catch(() => undefined);
    // Some machines halt without QEMU exiting (the Pi model has no power-off): the kernel's last words stand in.
    void this.console().expect(/reboot: (Power down|System halted)/, { deadline }).then(
      async () => {
        if ((await raceDeadline(proc.exited, 2000)).timedOut) await this.kill();
      },
      () => undefined,
    );
    const gone = await raceDeadline(proc.exited, deadline, opts?.signal);
    if (gone.timedOut) {
      const err = new TimeoutError('infrastructure', { awaited: `QEMU to exit after "${this.profile.guest.poweroffCommand}"`, deadline, machine: this.name, lastLines: this.log.lastLines(20) });
      await this.kill();
      throw err;
    }
  }

  /** Cuts the power at once (QMP quit, then signals): the disks keep whatever was written. */
  async crash(): Promise<void> {
    this.log.note('crash: power cut');
    await this.kill();
  }

  /** Reboots through the guest and waits until its shell answers again; resolves with the new boot count. */
  async reboot(opts?: WaitOptions): Promise<number> {
    const deadline = deadlineFrom(opts, 300_000, `reboot of ${this.name}`, 'pass { timeout } to reboot()');
    if (!this.backdoor) throw new ConfigurationError(`machine ${this.name}: reboot() needs a shell channel`);
    const before = this.boots;
    const session = new Promise<void>((resolve) => {
      const off = this.backdoor!.onSession(() => {
        off();
        resolve();
      });
    });
    await this.backdoor.sendBlind(this.profile.guest.rebootCommand, { deadline });
    if (this.profile.guest.shell.kind === 'serial-login') {
      this.serialShellStart = undefined;
      await this.startSerialShell({ deadline, signal: opts?.signal });
    }
    const back = await raceDeadline(session, deadline, opts?.signal);
    if (back.timedOut) throw new TimeoutError('infrastructure', { awaited: 'the guest to come back after reboot (a new shell session)', deadline, machine: this.name, lastLines: this.log.lastLines(20) });
    await this.waitForShell({ deadline, signal: opts?.signal });
    if (this.boots === before) this.boots++; // a reset that QMP did not report as guest-initiated
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
    if (!this.qmp) throw new InfrastructureError(`machine ${this.name} is not running; cannot ${what}`);
    return this.qmp;
  }

  /** Ensures QEMU is gone and closes the logs: the end of this machine object. */
  async stop(): Promise<void> {
    await this.kill();
    if (this.stateDir) await removeTempDir(this.stateDir);
    this.stateDir = undefined;
    this.disks = undefined;
    await Promise.all([...new Set([this.log, ...this.consoleLogs.values()])].map((l) => l.close()));
  }

  /** QMP quit, then SIGTERM, then SIGKILL; resolves when the process is gone. */
  private async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) {
      this._state = 'stopped';
      return;
    }
    this._state = 'stopping';
    this.qmp?.execute('quit').catch(() => undefined);
    const gone = await raceDeadline(proc.exited, 2000);
    if (gone.timedOut) await proc.stop(2000);
    await proc.exited;
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
