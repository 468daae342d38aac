// The Power protocol for a VM: a clean shutdown through the guest (QEMU's exit awaited; a guest that halts without
// QEMU exiting, as the Pi model does, is stopped once the kernel says so), a power cut, and a reboot through the guest
// that waits for its new shell session, or, on the Pi's firmware boot, restarts QEMU so the firmware stand-in reads
// the SD card anew.
import { ConfigurationError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { SerialShellStart } from '../console/serial-shell.ts';
import type { StreamConsole } from '../console/stream-console.ts';
import type { SupervisedProcess } from '../process/supervisor.ts';
import type { MachineState } from '../protocols/machine.ts';
import { POWERED_OFF, type RebootOptions } from '../protocols/power.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import type { BackdoorShell } from '../shell/backdoor-shell.ts';
import { type Deadline, deadlineFrom, raceDeadline } from '../time/deadline.ts';
import { type Lifeline, withLife } from '../time/lifeline.ts';
import { MachineDied, MachineStopped } from './machine-end.ts';
import type { MachineProfile } from './profile.ts';
import type { QmpClient } from './qmp.ts';

/** What power control needs of its QemuMachine. */
export interface PowerHost {
  readonly name: string;
  readonly profile: MachineProfile;
  readonly log: { note(line: string): void; lastLines(n?: number): string[] };
  readonly state: MachineState;
  boots: number;
  readonly backdoor: BackdoorShell | undefined;
  readonly serialShell: SerialShellStart;
  /** The Pi firmware stand-in loads a boot loader, which reads the SD card by itself at a reset. */
  readonly raspiBootloader: boolean;
  process(): SupervisedProcess | undefined;
  life(): Lifeline;
  /** The running QEMU's QMP, if there is one (none: nothing to ask). */
  currentQmp(): QmpClient | undefined;
  console(): StreamConsole;
  /**
   * A clean exit of QEMU is expected from now (`by` says whose): fleetlab begins a clean shutdown (the machine is
   * stopping), or, `stopping` false, waits for the guest's own (it runs until then).
   */
  beginShutdown(by: string, stopping?: boolean): void;
  kill(by: string): Promise<void>;
  start(opts: WaitOptions): Promise<void>;
  waitForShell(opts: WaitOptions): Promise<void>;
  /** Calls `fn` at the next guest reset. */
  onceReset(fn: () => void): void;
}

export class QemuPower {
  private readonly m: PowerHost;

  constructor(host: PowerHost) {
    this.m = host;
  }

  /** Clean shutdown through the guest's poweroff command, then waits for QEMU to exit cleanly. */
  async shutdown(opts?: WaitOptions): Promise<void> {
    if (this.m.state === 'stopped') return;
    const deadline = deadlineFrom(opts, 120_000, `clean shutdown of ${this.m.name}`, 'pass { timeout } to shutdown()');
    const proc = this.m.process()!;
    const life = this.m.life();
    const awaited = `a clean shutdown ("${this.m.profile.guest.poweroffCommand}")`;
    this.m.beginShutdown('shutdown()');
    this.m.console().mark();
    try {
      if (this.m.backdoor?.isReady) await this.m.backdoor.sendBlind(this.m.profile.guest.poweroffCommand, { deadline });
      else await this.m.currentQmp()?.execute('system_powerdown').catch(() => undefined);
    } catch (err) {
      if (!life.ended) throw err;
    }
    // Some machines halt without QEMU exiting (the Pi model has no power-off): the kernel's last words stand in.
    void this.m.console()
      .expect(POWERED_OFF, { deadline })
      .then(
        async () => {
          if ((await raceDeadline(proc.exited, 2000)).timedOut) await this.m.kill('shutdown() after the guest halted');
        },
        () => undefined,
      );
    const gone = await raceDeadline(proc.exited, deadline, opts?.signal, awaited);
    if (gone.timedOut) {
      const err = new TimeoutError('infrastructure', { awaited: `QEMU to exit after "${this.m.profile.guest.poweroffCommand}"`, deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20) });
      await this.m.kill('shutdown() timing out');
      throw err;
    }
    // QEMU gone, but not by the guest's power-off or fleetlab's hand: it died during the shutdown.
    const end = life.reason;
    if (end instanceof MachineDied) throw end.during(awaited);
  }

  /**
   * Waits until the guest powers itself off and QEMU exits (NTD's wait_for_shutdown), after a command such as
   * `systemctl poweroff`: from the call on, that exit is expected, not a death. A guest that had already powered off
   * (QEMU exited cleanly on its own, as it does at a guest's power-off) counts; any other end of the machine is thrown.
   */
  async waitForShutdown(opts?: WaitOptions): Promise<void> {
    const awaited = `${this.m.name} to power itself off (QEMU to exit)`;
    const proc = this.m.process();
    const life = this.m.life();
    if (!proc || this.m.state === 'stopped') {
      const end = life.reason;
      if (end instanceof MachineStopped || (end instanceof MachineDied && end.exit?.exitCode === 0 && !end.exit.signal)) return;
      throw end instanceof MachineDied ? end.during(awaited) : new ConfigurationError(`machine ${this.m.name}: waitForShutdown() on a machine that is not running`);
    }
    const deadline = deadlineFrom(opts, 300_000, awaited, 'pass { timeout } to waitForShutdown()');
    // Expected from now on, and after a timeout too: a clean exit later is the power-off, late (a crash still is a death).
    this.m.beginShutdown('waitForShutdown()', false);
    const gone = await raceDeadline(proc.exited, deadline, opts?.signal, awaited);
    if (gone.timedOut) throw new TimeoutError('test-failure', { awaited, deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20) });
    if (life.reason instanceof MachineDied) throw life.reason.during(awaited);
  }

  /** Cuts the power at once (QMP quit, then signals): the disks keep whatever was written. */
  async crash(): Promise<void> {
    this.m.log.note('crash: power cut');
    await this.m.kill('crash()');
  }

  /**
   * Reboots (the guest's reboot command, Ctrl-Alt-Del on its keyboard, or QEMU's reset) and waits until its shell
   * answers again; resolves with the new boot count.
   */
  async reboot(opts?: RebootOptions): Promise<number> {
    const deadline = deadlineFrom(opts, 300_000, `reboot of ${this.m.name}`, 'pass { timeout } to reboot()');
    if (!this.m.backdoor) throw new ConfigurationError(`machine ${this.m.name}: reboot() needs a shell channel`);
    const signal = withLife(opts?.signal, this.m.life());
    const before = this.m.boots;
    const via = opts?.via ?? 'command';
    const trigger = async () => {
      if (via === 'command') return this.m.backdoor!.sendBlind(this.m.profile.guest.rebootCommand, { deadline, signal });
      const qmp = this.m.currentQmp();
      if (!qmp) throw new ConfigurationError(`machine ${this.m.name}: reboot({ via: '${via}' }) needs its QEMU running`);
      this.m.log.note(via === 'reset' ? 'reboot: QEMU system_reset (the reset button)' : 'reboot: Ctrl-Alt-Del on the keyboard');
      if (via === 'reset') await qmp.execute('system_reset');
      else await qmp.execute('send-key', { keys: ['ctrl', 'alt', 'delete'].map((data) => ({ type: 'qcode', data })) });
    };
    if (this.m.profile.firmware.kind === 'raspi' && !this.m.raspiBootloader) return this.rebootThroughFirmware(trigger, deadline, signal, opts?.signal);
    let off = () => {};
    const session = new Promise<void>((resolve) => {
      off = this.m.backdoor!.onSession(() => {
        off();
        resolve();
      });
    });
    try {
      await trigger();
      if (this.m.profile.guest.shell.kind === 'serial-login') {
        this.m.serialShell.reset();
        await this.m.serialShell.start({ deadline, signal });
      }
      const back = await raceDeadline(session, deadline, signal, 'the guest to come back after reboot (a new shell session)');
      if (back.timedOut) throw new TimeoutError('infrastructure', { awaited: 'the guest to come back after reboot (a new shell session)', deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20) });
    } finally {
      off();
    }
    await this.m.waitForShell({ deadline, signal: opts?.signal });
    if (this.m.boots === before) this.m.boots++; // a reset that QMP did not report as guest-initiated
    return this.m.boots;
  }

  /**
   * A reboot on a machine whose firmware fleetlab plays (the Pi's) and that boots a kernel straight from it: QEMU's
   * reset would start the kernel it was given again, while the real firmware reads config.txt and cmdline.txt anew. So the guest reboots, and at
   * its reset QEMU is stopped and started again with what the SD card says now: one boot, as on the board.
   */
  private async rebootThroughFirmware(trigger: () => Promise<void>, deadline: Deadline, signal: AbortSignal | undefined, outer: AbortSignal | undefined): Promise<number> {
    const before = this.m.boots;
    const reset = new Promise<void>((resolve) => this.m.onceReset(resolve));
    await trigger();
    const r = await raceDeadline(reset, deadline, signal, 'the guest to reset after reboot');
    if (r.timedOut) throw new TimeoutError('infrastructure', { awaited: 'the guest to reset after reboot', deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20) });
    this.m.log.note('reset: the Pi firmware stand-in reads the SD card again (QEMU restarted)');
    await this.m.kill('a reboot through the Pi firmware stand-in');
    await this.m.start({ deadline, signal: outer });
    await this.m.waitForShell({ deadline, signal: outer });
    this.m.boots = before + 1;
    return this.m.boots;
  }
}
