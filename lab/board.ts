// A lab board as a machine: its power through a power driver, its serial line through the `serialport` package (or
// a serial server's raw TCP port), with the same console capture, waitForConsoleText, serial login and framed shell
// channel and console checks that a QEMU machine has. It is a Machine (harness/protocols/machine.ts) as a VM is; what
// the hardware lacks is a capability it does not have (no screen, no fabric NICs, no host-link forwards; media only
// with an SD mux), so a scenario that uses one checks for it or calls need(), which names the board.
//
// The shell channel runs over a serial login, as on QEMU's Pi: login, then the tty is put raw and the backdoor
// protocol runs on it. Mind the throughput: at 115200 baud a line carries about 11 KB/s, so the channel's answers
// should stay small (a 10 MB output takes a quarter of an hour); use SSH (a board with a network address) for bulk.
import { existsSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { SerialPort } from 'serialport';
import type { ConsoleCheckHit, ConsoleCheckSettings } from '../harness/console/console-checks.ts';
import type { ConsoleLog } from '../harness/console/console-log.ts';
import type { ExpectOptions } from '../harness/protocols/console.ts';
import { ConsoleSet } from '../harness/console/console-set.ts';
import { PROMPT_QUIET_MS, serialLogin } from '../harness/console/serial-login.ts';
import { SerialShellStart } from '../harness/console/serial-shell.ts';
import type { StreamConsole } from '../harness/console/stream-console.ts';
import { ConfigurationError, InfrastructureError, TimeoutError } from '../harness/errors/fleetlab-error.ts';
import type { MachineFacts, MachineState, ManagedMachine, SshOptions } from '../harness/protocols/machine.ts';
import type { Media, MediaSpec } from '../harness/protocols/media.ts';
import type { WaitOptions } from '../harness/protocols/wait-options.ts';
import { POWERED_OFF, type RebootOptions } from '../harness/protocols/power.ts';
import { NixosHelpers } from '../harness/nixos/nixos.ts';
import type { SshEndpoint } from '../harness/nixos/nixos-machine.ts';
import { MachineDied, MachineStopped } from '../harness/qemu/machine-end.ts';
import { testbedImage, type TestbedImage } from '../harness/qemu/testbed-source.ts';
import type { MachineProfile } from '../harness/qemu/profile.ts';
import { BackdoorShell, silenceOf } from '../harness/shell/backdoor-shell.ts';
import { ShellOps } from '../harness/shell/shell-ops.ts';
import { ShellMachine } from '../harness/shell/shell-machine.ts';
import { SshAccess } from '../harness/ssh/ssh-access.ts';
import type { SshShell } from '../harness/ssh/ssh-session.ts';
import { deadlineFrom } from '../harness/time/deadline.ts';
import { Lifeline, withLife } from '../harness/time/lifeline.ts';
import { powerDriver, type PowerDriver } from './drivers/power.ts';
import type { WriteReport } from './drivers/image-writer.ts';
import { flashThroughMux, sdMux } from './drivers/sd-mux.ts';
import { serialTarget, type BoardSpec } from './inventory.ts';
import type { LabHost } from './lab-host.ts';
import { openRfc2217, type Rfc2217Stream } from './rfc2217.ts';

export interface BoardOptions {
  /** The role's name in the scenario (what QEMU machines are named by). */
  name: string;
  logDir: string;
  onConsoleLine?: (line: string) => void;
  /** The scenario's console checks, on top of the profile's. */
  consoleChecks?: ConsoleCheckSettings;
  /** The lab host it hangs off (its host-side power commands run there). */
  host?: LabHost;
}

export class Board extends ShellMachine implements ManagedMachine, Media {
  readonly kind = 'board' as const;
  readonly name: string;
  readonly boardName: string;
  readonly spec: BoardSpec;
  readonly profile: MachineProfile;
  readonly log: ConsoleLog;
  readonly power: PowerDriver;
  /** Boards boot what their own storage holds: fleetlab built no boot disk for them. */
  readonly bootDisk = undefined;
  /** fleetlab cannot give a board its name (no kernel command line, no fw_cfg): the system keeps its own. */
  readonly passesHostname = false;
  facts: MachineFacts | undefined;
  private readonly serialConsole: StreamConsole;
  private readonly backdoor: BackdoorShell;
  protected readonly shell: ShellOps;
  private stream: SerialPort | Socket | Rfc2217Stream | undefined;
  /** The lab host it hangs off, if any. */
  readonly host: LabHost | undefined;
  private life = new Lifeline();
  private _state: MachineState = 'stopped';
  /** The serial login that turns the line into the shell channel, once per boot. */
  private readonly serialShell = new SerialShellStart({
    console: () => this.serialConsole,
    login: (opts) => this.login(undefined, undefined, opts),
    // A key on the line while the boot loader counts down ("Hit any key to stop autoboot") stops the boot, and the
    // boot loader shares the line on most boards: so no poke until a login prompt shows or the line has been quiet
    // for QUIET_BEFORE_POKE_MS (a board booted before the line was opened shows nothing).
    before: async (opts) => {
      await Promise.race([this.serialConsole.expect(/login: *$/, { ...opts, quietMs: PROMPT_QUIET_MS }), this.serialConsole.expect(/$/, { ...opts, quietMs: QUIET_BEFORE_POKE_MS })]);
    },
  });
  /**
   * Boots so far: each power-on counts one, and each new kernel banner on the line after it ("Linux version …": a
   * reboot, or a reset the system made by itself); a reboot() that saw none (a quiet kernel) counts one all the same.
   */
  boots = 0;
  /** The power-on boot is counted: its own kernel banner is no new boot. */
  private bannerOfCountedBoot = false;
  /** When the last banner was taken (ms): one boot can print it more than once (a console replaying the log). */
  private lastBannerAt = 0;
  /** Its folder in the case's output. */
  readonly logDir: string;
  /** The fleetlab testbed its card holds, when its profile boots the testbed's disk (testbed generations are built for it). */
  testbed: TestbedImage | undefined;
  private readonly sshAccess: SshAccess;
  /** Its serial line's console, its log and the console checks on it. */
  private readonly consoles: ConsoleSet;
  /** From power-on until the shell answers: a console check then is an infrastructure error (the board did not come up). */
  private booting = false;

  constructor(boardName: string, spec: BoardSpec, profile: MachineProfile, opts: BoardOptions) {
    super();
    if (profile.guest.shell.kind === 'backdoor') {
      throw new ConfigurationError(`board ${boardName}: its profile ${profile.name} has a backdoor shell on ${profile.guest.shell.console}, which a board does not have; give the board a profile whose guest.shell is { kind: 'serial-login', console: '${profile.serialConsole}' }`);
    }
    this.name = opts.name;
    this.logDir = opts.logDir;
    this.boardName = boardName;
    this.spec = spec;
    this.profile = profile;
    this.host = opts.host;
    this.power = powerDriver(spec.power, boardName, opts.host);
    this.consoles = new ConsoleSet({ machine: opts.name, logDir: opts.logDir, main: profile.serialConsole, checks: [profile.consoleChecks, opts.consoleChecks], life: () => this.life, booting: () => this.booting, note: (l) => this.log.note(l), onFired: (hit) => this.emit('console-check', hit) });
    this.log = this.consoles.log;
    this.serialConsole = this.consoles.get();
    this.log.onLine((line) => KERNEL_BANNER.test(line) && this.kernelBanner());
    this.sshAccess = new SshAccess({ name: opts.name, serverName: boardName, note: (l) => this.log.note(l), life: () => this.life });
    if (opts.onConsoleLine) this.log.onLine(opts.onConsoleLine);
    const silence = silenceOf(profile.guest.shell, (ms, limitS) => this.lineSilent(ms, limitS));
    this.backdoor = new BackdoorShell(opts.name, { lastLines: () => this.log.lastLines(20), note: (t) => this.log.note(t), life: () => this.life, silence, strict: 'strict' in profile.guest.shell ? profile.guest.shell.strict : undefined });
    this.shell = new ShellOps(this.backdoor, () => this.log.lastLines(20));
  }

  /** "board vboard-1 (a lab board)": how messages name it. */
  get label(): string {
    return `board ${this.boardName} (a lab board)`;
  }

  /** Its SD card, written through the lab file's SD mux; none without one. */
  get media(): Media | undefined {
    return this.spec.sdMux ? this : undefined;
  }

  get state(): MachineState {
    return this._state;
  }

  get powerState(): 'on' | 'off' {
    return this._state === 'running' ? 'on' : 'off';
  }

  /** Where the serial line is: the device path (or host:port), for reports. */
  get serialDevice(): string {
    const t = serialTarget(this.spec);
    return 'tcp' in t ? `tcp:${t.tcp}` : 'rfc2217' in t ? `rfc2217:${t.rfc2217}` : t.path;
  }

  /**
   * Opens the serial line (if it is not open: it stays open across crash() and start(), as a USB serial adapter
   * does), then power-cycles the board: off (if the switch says it is on, or cannot say), then on.
   */
  async start(opts?: WaitOptions): Promise<void> {
    if (this._state !== 'stopped') throw new InfrastructureError(`board ${this.boardName} is already ${this._state}`);
    this._state = 'starting';
    this.emit('state', this._state);
    const deadline = deadlineFrom(opts, 60_000, `start of board ${this.boardName}`);
    try {
      if (!this.stream) {
        this.life = new Lifeline();
        await this.openSerial(deadline.remaining());
      } else if (this.life.ended) this.life = new Lifeline(); // a console check ended the last one
      this.consoles.newLife();
      this.booting = true;
      if ((await this.power.get()) !== false) {
        this.log.note(`power off (${this.power.describe}), ${this.spec.power.offDelayMs} ms`);
        await this.power.set(false);
        await sleep(this.spec.power.offDelayMs);
      }
      if (!this.testbed && this.profile.boot.kind === 'testbed-disk') this.testbed = await testbedImage(this.profile.boot.image, this.profile.name, (l) => this.log.note(l));
      this.serialConsole.mark();
      this.bannerOfCountedBoot = true;
      this.log.note(`power on (${this.power.describe})`);
      await this.power.set(true);
      if (this.spec.power.onDelayMs) await sleep(this.spec.power.onDelayMs);
    } catch (err) {
      this._state = 'stopped';
      this.closeSerial('start failed');
      throw err;
    }
    this.boots++;
    this._state = 'running';
    this.emit('state', this._state);
    this.facts = { kind: 'board', profile: this.profile.name, arch: this.profile.arch, firmware: this.profile.firmware.kind, board: this.boardName, serial: this.serialDevice, power: this.power.describe };
  }

  /** Opens the serial line alone, the power left as it is (fleetlab lab console). */
  async attachConsole(timeoutMs = 10_000): Promise<StreamConsole> {
    if (!this.stream) {
      this.life = new Lifeline();
      await this.openSerial(timeoutMs);
    }
    return this.serialConsole;
  }

  /** Closes the serial line opened by attachConsole(). */
  detachConsole(): void {
    this.closeSerial('detached');
  }

  private async openSerial(timeoutMs: number): Promise<void> {
    const t = serialTarget(this.spec);
    let stream: SerialPort | Socket | Rfc2217Stream;
    let device: string | undefined;
    if ('tcp' in t) {
      const [host, port] = t.tcp.split(/:(?=\d+$)/) as [string, string];
      stream = connect({ host, port: Number(port) });
      await once(stream, 'connect', timeoutMs, `the serial server ${t.tcp} of board ${this.boardName}`);
    } else if ('rfc2217' in t) {
      stream = await openRfc2217(t.rfc2217, t.baud, Math.min(timeoutMs, 10_000)).catch((err: Error) => {
        throw new InfrastructureError(`board ${this.boardName}${this.host ? ` on ${this.host.describe}` : ''}: ${err.message}`, { cause: err });
      });
    } else {
      const path = (device = resolveSerialPath(t.path, this.boardName));
      stream = new SerialPort({ path, baudRate: t.baud, autoOpen: false });
      await new Promise<void>((ok, fail) => (stream as SerialPort).open((err) => (err ? fail(new InfrastructureError(`board ${this.boardName}: cannot open serial line ${path}: ${err.message}`)) : ok())));
    }
    this.stream = stream;
    stream.on('close', () => this.serialLost(stream, `its serial line ${this.serialDevice}${this.host ? ` (exported by ${this.host.describe})` : ''} closed`));
    stream.on('error', () => undefined);
    if (device) {
      // A USB serial adapter that is unplugged (a pseudo-terminal whose other side is gone) does not end the stream:
      // the tty reads nothing more. The device node going away is the sign.
      const watch = setInterval(() => existsSync(device) || this.serialLost(stream, `its serial line ${this.serialDevice} closed: ${device} no longer exists (the adapter unplugged?)`), SERIAL_CHECK_MS);
      watch.unref();
      stream.on('close', () => clearInterval(watch));
    }
    this.serialConsole.attach(stream as unknown as Socket);
    this.backdoor.attach(stream as unknown as Socket);
    this.log.note(`serial line ${this.serialDevice} open`);
  }

  /** The serial line is gone while it was open: the board's life ends (every wait on it fails, naming the line). */
  private serialLost(stream: SerialPort | Socket | Rfc2217Stream, how: string): void {
    if (this.stream !== stream) return;
    this.log.note(how);
    this.life.finish(new MachineDied(this.boardName, how, undefined, () => this.log.lastLines(20), undefined));
    this.closeSerial('the serial line closed');
  }

  /**
   * Nothing came over the serial line for `ms` while a command ran, heartbeats included: the board hangs (a kernel
   * that locked up prints nothing more). Its life ends as a dead VM's does; the line stays open, and the runner's
   * release (or crash() and start()) powers it off and on.
   */
  private lineSilent(ms: number, limitS: number): void {
    this.life.finish(new MachineDied(this.boardName, `its serial line ${this.serialDevice} was silent for ${Math.round(ms / 1000)} s while a command ran (the limit is ${limitS} s: guest.shell.silenceLimitSeconds of profile ${this.profile.name}); the board hangs?`, undefined, () => this.log.lastLines(20), undefined));
  }

  private closeSerial(why: string): void {
    const s = this.stream;
    this.stream = undefined;
    if (!s) return;
    this.serialConsole.detach(why);
    this.backdoor.detach(why);
    if (s instanceof SerialPort) {
      if (s.isOpen) s.close(() => undefined);
    } else s.destroy();
  }

  /** Logs in on the serial line and turns it into the framed shell channel; waits until it answers. */
  async waitForShell(opts?: WaitOptions): Promise<void> {
    const deadline = deadlineFrom(opts, 180_000, `shell of board ${this.boardName} to come up`, 'pass { timeout } to waitForShell(), or --timeout-scale for a run');
    const signal = withLife(opts?.signal, this.life);
    if (!this.backdoor.isReady) await this.serialShell.start({ deadline, signal });
    await this.backdoor.waitReady({ deadline, signal });
    this.booting = false;
  }

  /** Runs `fn` with console check `name` silenced, for a step that provokes it; resolves once the check matched. */
  expectConsoleCheck(name: string, fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit> {
    return this.consoles.expectCheck(name, fn, opts);
  }

  /** expectConsoleCheck('kernel-panic', fn). */
  expectPanic(fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit> {
    return this.expectConsoleCheck('kernel-panic', fn, opts);
  }

  login(user?: string, password?: string, opts?: WaitOptions): Promise<void> {
    const u = user ?? this.spec.login?.user ?? this.profile.guest.login?.user;
    const p = password ?? this.spec.login?.password ?? this.profile.guest.login?.password;
    if (u === undefined || p === undefined) throw new ConfigurationError(`board ${this.boardName}: no login given (board.login in the lab file, or the profile's guest.login)`);
    return serialLogin(this.serialConsole, this.boardName, u, p, { ...opts, signal: withLife(opts?.signal, this.life) });
  }

  console(name?: string): StreamConsole {
    return this.consoles.get(name);
  }
  waitForConsoleText(pattern: RegExp | string, opts?: ExpectOptions): Promise<RegExpExecArray> {
    return this.serialConsole.expect(pattern, opts);
  }
  sendConsole(text: string): Promise<void> {
    return this.serialConsole.write(text);
  }

  /**
   * Reboots through the guest's reboot command (or with `via: 'reset'` a power cycle through its relay) and waits for
   * a new login and shell; resolves with the boot count. A board has no keyboard fleetlab drives: no 'ctrl-alt-del'.
   */
  async reboot(opts?: RebootOptions): Promise<number> {
    const deadline = deadlineFrom(opts, 300_000, `reboot of board ${this.boardName}`, 'pass { timeout } to reboot()');
    const signal = withLife(opts?.signal, this.life);
    const before = this.boots;
    if (opts?.via === 'ctrl-alt-del') throw new ConfigurationError(`board ${this.boardName}: reboot({ via: 'ctrl-alt-del' }) needs a keyboard fleetlab drives, which a board has not; use via: 'command' (its reboot command) or 'reset' (a power cycle)`);
    if (opts?.via === 'reset') {
      await this.crash();
      await this.start({ deadline, signal: opts.signal });
      await this.waitForShell({ deadline, signal: opts.signal });
      return this.boots;
    }
    await this.backdoor.sendBlind(this.profile.guest.rebootCommand, { deadline, signal });
    // Our own command ended the session: nothing more goes to that shell; the next boot's login starts a new one.
    this.backdoor.guestReset();
    this.serialShell.reset();
    this.serialConsole.mark();
    // The new boot's getty has asked: "login:" anywhere, not only at a line's end. A kernel message can land on the
    // prompt's line ("testbed login: [ 9.24] … boot complete"); the login below pokes for a fresh prompt anyway.
    await this.serialConsole.expect(/login:/, { deadline, signal }).catch((err: unknown) => {
      if (err instanceof TimeoutError) throw new TimeoutError('infrastructure', { awaited: `board ${this.boardName} to come back after "${this.profile.guest.rebootCommand}" (a login prompt)`, deadline, machine: this.name, lastLines: this.log.lastLines(20) });
      throw err;
    });
    await this.waitForShell({ deadline, signal: opts?.signal });
    if (this.boots === before) this.boots++; // a kernel that printed no banner
    return this.boots;
  }

  /** A kernel banner: a new boot, unless it is the power-on boot's own. The old boot's shell session is gone. */
  private kernelBanner(): void {
    if (this._state === 'stopped' || this._state === 'stopping') return;
    if (Date.now() - this.lastBannerAt < SAME_BOOT_MS) return;
    this.lastBannerAt = Date.now();
    if (this.bannerOfCountedBoot) {
      this.bannerOfCountedBoot = false;
      return;
    }
    this.boots++;
    this.log.note(`new boot seen on the serial line (boot ${this.boots})`);
    this.backdoor.guestReset();
    this.serialShell.reset();
    this.emit('reset', this.boots);
  }

  /** Clean shutdown through the guest, then the power is switched off. */
  async shutdown(opts?: WaitOptions): Promise<void> {
    if (this._state === 'stopped') return;
    const deadline = deadlineFrom(opts, 120_000, `clean shutdown of board ${this.boardName}`);
    this.serialConsole.mark();
    await this.backdoor.sendBlind(this.profile.guest.poweroffCommand, { deadline, signal: withLife(opts?.signal, this.life) });
    await this.serialConsole.expect(POWERED_OFF, { deadline }).catch(() => this.log.note('no "reboot: Power down" seen; switching off anyway'));
    await this.stop();
  }

  /**
   * Waits until the board powers itself off (NTD's wait_for_shutdown): its kernel's last words on the serial console
   * ("reboot: Power down" or "System halted"), then fleetlab switches its power off, as shutdown() does.
   */
  async waitForShutdown(opts?: WaitOptions): Promise<void> {
    if (this._state === 'stopped') return;
    const deadline = deadlineFrom(opts, 300_000, `board ${this.boardName} to power itself off`, 'pass { timeout } to waitForShutdown()');
    await this.serialConsole.expect(POWERED_OFF, { deadline, signal: opts?.signal });
    await this.stop();
  }

  /** Cuts the power at once; the serial line stays open, and start() powers the board on again. */
  async crash(): Promise<void> {
    this.log.note('crash: power cut');
    await this.power.set(false);
    this.backdoor.guestReset();
    this.serialShell.reset();
    this._state = 'stopped';
    this.emit('state', this._state);
  }

  /**
   * The Media protocol on a board: `disk: { image }` is written onto its SD card through the mux (flash()); the card
   * is the board's own, so `size` is not fleetlab's to choose. A board has no blank disk or CD-ROM fleetlab can give it.
   */
  async useMedia(media: MediaSpec): Promise<void> {
    if (media.cdrom !== undefined) throw unsupported(this.boardName, 'a CD-ROM (useMedia cdrom)', 'a board boots what its own storage holds; write an SD image instead');
    if ('blank' in media.disk) throw unsupported(this.boardName, 'a blank disk (useMedia blank)', 'its storage is its SD card; write an image to it');
    await this.flash(media.disk.image);
  }

  async ejectCdrom(): Promise<void> {
    throw unsupported(this.boardName, 'ejectCdrom()', 'a board has no CD-ROM drive fleetlab controls');
  }

  /** NixOS generations on the board, through its shell (what needs QEMU, such as keys into a menu, says it is unsupported). */
  get nixos(): NixosHelpers {
    return (this._nixos ??= new NixosHelpers(this));
  }
  private _nixos: NixosHelpers | undefined;

  /** Writes `image` onto the board's SD card through its mux, the board off; start() then boots it. */
  async flash(image: string): Promise<WriteReport> {
    if (!this.spec.sdMux) throw unsupported(this.boardName, 'flash()', 'the lab file gives it no SD mux (sdMux)');
    if (this._state !== 'stopped') await this.crash();
    else await this.power.set(false);
    return flashThroughMux(sdMux(this.spec.sdMux, this.boardName, this.host), image, this.boardName, (l) => this.log.note(l));
  }

  /** Power off and close the serial line; waits on the board end as machine stops do. */
  async stop(): Promise<void> {
    if (this._state === 'stopped' && !this.stream) return;
    this._state = 'stopping';
    this.emit('state', this._state);
    this.life.finish(new MachineStopped(this.boardName, 'stop()'));
    this.sshAccess.closeAll();
    this.closeSerial('the board was stopped');
    await this.power.set(false).catch((err: Error) => this.log.note(`power off failed: ${err.message}`));
    this.log.note(`power off (${this.power.describe})`);
    this._state = 'stopped';
    this.emit('state', this._state);
  }

  /**
   * An SSH session to the board's network address (the lab file's network), with the shell helpers, transfers and
   * forwards of a VM's; the host key is pinned at the first connection (expectNewHostKey after a reinstall).
   */
  async ssh(opts: SshOptions = {}): Promise<SshShell> {
    const net = this.sshServer('ssh()', 'open SSH');
    return this.sshAccess.open({ host: net.address, port: net.sshPort, user: net.user, privateKey: net.privateKey }, opts, { label: `board ${this.boardName}`, noKey: `board ${this.boardName}: ssh() needs a private key: network.privateKey in the lab file, or ssh({ privateKey })` });
  }

  /** The lab file's network entry of the running board, where SSH reaches it; `member` and `what` name what wanted it. */
  private sshServer(member: string, what: string): NonNullable<BoardSpec['network']> {
    const net = this.spec.network;
    if (!net) throw unsupported(this.boardName, member, 'the lab file gives it no network address (network: { address })');
    if (this._state !== 'running') throw new InfrastructureError(`board ${this.boardName} is not powered on; cannot ${what}`);
    return net;
  }

  /** The lab file's SSH user and key for the board, when it names a key. */
  get sshIdentity(): { user: string; privateKey: string } | undefined {
    const net = this.spec.network;
    return net?.privateKey ? { user: net.user, privateKey: net.privateKey } : undefined;
  }

  /** True when the lab file gives the board a network address: an SSH client on this host reaches it there. */
  get hasHostLink(): boolean {
    return !!this.spec.network;
  }

  /** Where ssh, nix copy or nixos-anywhere reach the board: the lab file's network address, user and key, and the host key ssh() pinned. */
  sshEndpoint(): SshEndpoint {
    const net = this.sshServer('sshEndpoint()', 'reach it over SSH');
    return { host: net.address, port: net.sshPort, user: net.user, privateKey: net.privateKey, hostKey: this.sshAccess.hostKey() };
  }

  /** `signal` joined with the board's life: aborted when either ends (for a host process that works on the board). */
  lifeSignal(signal?: AbortSignal): AbortSignal {
    return withLife(signal, this.life)!;
  }
}

/** The first line of a Linux boot on its console: how a board's boots are counted. */
const KERNEL_BANNER = /\bLinux version \d+\.\d+/;
/** Banners this close together are one boot's (its console replays the kernel log; a line arrives in pieces): no board boots faster. */
const SAME_BOOT_MS = 3000;

/** How often an open serial device is checked for being there still. */
const SERIAL_CHECK_MS = 1000;

/** How long the serial line must be quiet before fleetlab presses Enter to get a login prompt. */
const QUIET_BEFORE_POKE_MS = 8_000;

function unsupported(board: string, member: string, why: string): ConfigurationError {
  return new ConfigurationError(`${member} is not supported by board ${board}: ${why}`);
}

/** A serial device path; a by-id name that is only part of a link's name (a USB serial number) is looked up. */
function resolveSerialPath(path: string, board: string): string {
  if (existsSync(path)) return path;
  const byId = '/dev/serial/by-id/';
  if (path.startsWith(byId)) {
    const want = path.slice(byId.length);
    const found = existsSync(byId) ? readdirSync(byId).find((n) => n.includes(want)) : undefined;
    if (found) return byId + found;
  }
  throw new InfrastructureError(`board ${board}: its serial line ${path} does not exist (adapter unplugged? a different by-id name?)`);
}

function once(stream: Socket, event: string, ms: number, what: string): Promise<void> {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new InfrastructureError(`${what} did not answer within ${Math.round(ms / 1000)} s`)), ms);
    stream.once(event, () => {
      clearTimeout(timer);
      ok();
    });
    stream.once('error', (err) => {
      clearTimeout(timer);
      fail(new InfrastructureError(`${what}: ${err.message}`));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

