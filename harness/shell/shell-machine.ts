// The shell half of a machine, once for every kind: a QEMU machine and a lab board both hand their commands to a
// ShellOps (over the backdoor or a serial-login channel) and answer the Shell protocol through it.
import { EventEmitter } from 'node:events';
import { basename, join } from 'node:path';
import { need, type Machine, type MachineState } from '../protocols/machine.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import type { CopyReport, ExecOptions, ExecResult, Shell } from '../protocols/shell.ts';
import type { Systemd, SystemdOptions, UnitActiveState } from '../protocols/systemd.ts';
import { copyFromGuest, copyToGuest } from './file-copy.ts';
import type { ShellOps } from './shell-ops.ts';
import { ttyText, waitUntilTtyMatches } from './tty-text.ts';
import { SystemdOps } from './systemd-ops.ts';

export abstract class ShellMachine extends EventEmitter implements Shell, Systemd {
  /** The machine's name in messages. */
  abstract readonly name: string;
  /** Where its commands go. */
  protected abstract readonly shell: ShellOps;
  /** Running, or on its way up or down. */
  abstract readonly state: MachineState;
  /** Its folder in the case's output (console logs); copyFromMachine's default target is its files/ folder. */
  abstract readonly logDir: string;

  /**
   * Its address on one of the scenario's networks (its `net` capability's); a machine on none of fleetlab's networks
   * (a lab board: its lab network is its own) is a ConfigurationError naming it.
   */
  address(network: string): string {
    return need(this as unknown as Machine, 'net', `address("${network}")`).address(network);
  }

  get machineName(): string {
    return this.name;
  }
  /**
   * Whether the machine runs and its shell answers (`true`, within `timeout`, default 5 s) now (NTD's is_up); never
   * throws: a machine that is booting, stopped or dead is not up.
   */
  async isUp(opts?: Pick<WaitOptions, 'timeout'>): Promise<boolean> {
    if (this.state !== 'running') return false;
    const r = await this.shell.execute('true', { timeout: opts?.timeout ?? 5000, strict: false }).catch(() => undefined);
    return r?.exitCode === 0 && !r.timedOut;
  }
  execute(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.shell.execute(command, opts);
  }
  succeed(command: string | readonly string[], opts?: ExecOptions): Promise<string> {
    return this.shell.succeed(command, opts);
  }
  fail(command: string | readonly string[], opts?: ExecOptions): Promise<string> {
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
  waitForOpenPort(port: number, opts?: ExecOptions & { addr?: string }): Promise<void> {
    return this.shell.waitForOpenPort(port, opts);
  }
  waitForClosedPort(port: number, opts?: ExecOptions): Promise<void> {
    return this.shell.waitForClosedPort(port, opts);
  }
  waitForUnixSocket(path: string, opts?: ExecOptions & { datagram?: boolean }): Promise<void> {
    return this.shell.waitForUnixSocket(path, opts);
  }
  waitForUnit(unit: string, opts?: SystemdOptions & { intervalMs?: number }): Promise<void> {
    return this.systemd.waitForUnit(unit, opts);
  }
  systemctl(args: string, opts?: SystemdOptions): Promise<ExecResult> {
    return this.systemd.systemctl(args, opts);
  }
  unitInfo(unit: string, opts?: SystemdOptions): Promise<Record<string, string>> {
    return this.systemd.unitInfo(unit, opts);
  }
  unitProperty(unit: string, name: string, opts?: SystemdOptions): Promise<string> {
    return this.systemd.unitProperty(unit, name, opts);
  }
  requireUnitState(unit: string, state?: UnitActiveState, opts?: SystemdOptions): Promise<void> {
    return this.systemd.requireUnitState(unit, state, opts);
  }
  startUnit(unit: string, opts?: SystemdOptions): Promise<void> {
    return this.systemd.startUnit(unit, opts);
  }
  stopUnit(unit: string, opts?: SystemdOptions): Promise<void> {
    return this.systemd.stopUnit(unit, opts);
  }
  private systemdOps?: SystemdOps;
  private get systemd(): SystemdOps {
    return (this.systemdOps ??= new SystemdOps(this, () => this.shell.lastLines()));
  }
  /**
   * Copies a host file, or a folder with what it holds, to `guestPath` over the shell channel (no SSH), checked by
   * SHA-256 (NTD's copy_from_host_via_shell). A folder's contents land in the folder `guestPath`.
   */
  copyToMachine(hostPath: string, guestPath: string, opts?: ExecOptions): Promise<CopyReport> {
    return copyToGuest(this, hostPath, guestPath, opts);
  }
  /**
   * Copies a guest file or folder to the host over the shell channel, checked by SHA-256 (NTD's copy_from_vm), as
   * `<hostDir>/<its name>`; by default into the machine's folder of the case's output (files/), attached to the report.
   */
  async copyFromMachine(guestPath: string, hostDir?: string, opts?: ExecOptions): Promise<CopyReport> {
    const r = await copyFromGuest(this, guestPath, hostDir ?? join(this.logDir, 'files'), opts);
    this.emit('artifact', { name: `${this.name}-${basename(r.path)}`, path: r.path });
    return r;
  }
  /** The text on virtual console `tty` (1 for tty1) from /dev/vcsN, a line per screen row (NTD's get_tty_text). */
  ttyText(tty: number, opts?: ExecOptions): Promise<string> {
    return ttyText(this, tty, opts);
  }
  /** Waits until virtual console `tty` shows text matching `pattern` (a RegExp, or a string read as one); returns the match. */
  waitUntilTtyMatches(tty: number, pattern: RegExp | string, opts?: ExecOptions & { intervalMs?: number; literal?: boolean }): Promise<RegExpExecArray> {
    return waitUntilTtyMatches(this, tty, pattern, { ...opts, lastLines: () => this.shell.lastLines() });
  }
  /** The guest kernel's boot id: changes on every boot. */
  async bootId(opts?: ExecOptions): Promise<string> {
    return (await this.succeed('cat /proc/sys/kernel/random/boot_id', opts)).trim();
  }
}
