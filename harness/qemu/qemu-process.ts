// One QEMU process of a machine: spawned supervised (it dies with the runner), paused until its QMP socket and every
// console are connected (so no byte is missed), its exit told once with whether fleetlab expected it, a QMP connection
// lost under a running QEMU told as a loss, and stopped by QMP quit, then SIGTERM, then SIGKILL.
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { TimeoutError } from '../errors/fleetlab-error.ts';
import { spawnSupervised, type SupervisedProcess } from '../process/supervisor.ts';
import { removeTempDir } from '../process/temp-dirs.ts';
import { connectUnix } from '../process/unix-socket.ts';
import { type Deadline, formatMs, now, pollUntil, raceDeadline } from '../time/deadline.ts';
import { consoleSocket, qmpSocket } from './qemu-argv.ts';
import { type HostPlacement, qemuCommand } from './qemu-command.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';

/** Under KVM a guest prints within a second or two; this much silence on every console means KVM hangs it. */
export const KVM_SIGN_OF_LIFE_MS = 20_000;

/** How a process ended: whether fleetlab ended it (and how), and the exit status. */
export interface ProcessEnd {
  expected: boolean;
  /** What fleetlab did to end it: kill (quit, signals) or shutdown (the guest's power-off), and who asked. */
  intent: { how: 'kill' | 'shutdown'; by: string } | undefined;
  exit: { exitCode: number | null; signal: string | null };
}

export interface QemuProcessOptions {
  /** The machine's name, for messages. */
  machine: string;
  binary: string;
  /** Where on the host it runs (a fleet's VMs: one CPU each, the batch scheduler). */
  placement?: HostPlacement;
  argv: string[];
  /** Its 0700 run dir (sockets), removed when it exits. */
  runDir: string;
  note(line: string): void;
  /** A QMP event (RESET, SHUTDOWN, …). */
  onEvent(e: QmpEvent): void;
  /** QMP closed while QEMU still ran and fleetlab did not ask: the machine cannot be controlled any more. */
  onQmpLost(how: string): void;
  /** The process exited (once). */
  onExit(end: ProcessEnd): void;
}

export class QemuProcess {
  readonly proc: SupervisedProcess;
  readonly runDir: string;
  qmp: QmpClient | undefined;
  /** Bytes arrived on some console: the guest is alive. */
  outputSeen = false;
  private intent: ProcessEnd['intent'];
  private killing: Promise<void> | undefined;
  private readonly o: QemuProcessOptions;

  constructor(o: QemuProcessOptions) {
    this.o = o;
    this.runDir = o.runDir;
    const cmd = qemuCommand(o.binary, o.argv, o.placement);
    const proc = spawnSupervised('qemu', cmd.file, cmd.args, {
      onLine: (stream, line) => line.trim() && o.note(`qemu[${proc.pid}] ${stream}: ${line}`),
    });
    this.proc = proc;
    void proc.exited.then(() => this.exited());
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** The stop under way, if any. */
  get stopping(): Promise<void> | undefined {
    return this.killing;
  }

  /** Fleetlab begins a clean shutdown through the guest: a clean exit is expected from now. */
  expectShutdown(by: string): void {
    this.intent = { how: 'shutdown', by };
  }

  /**
   * Connects QMP and every console while the VM is paused: `attach` gets each console's socket. Throws what QEMU
   * said if it exits meanwhile.
   */
  async connect(consoles: string[], attach: (name: string, sock: Socket) => void, deadline: Deadline, signal?: AbortSignal): Promise<QmpClient> {
    const proc = this.proc;
    const connectDeadline = deadline.child(30_000, `QEMU of ${this.o.machine} to open its sockets`);
    const ready = await pollUntil(() => (!proc.running || existsSync(qmpSocket(this.runDir)) ? true : undefined), { deadline: connectDeadline, intervalMs: 20, signal });
    if (!proc.running) throw proc.exitError('exited right after it started');
    if (ready.timedOut) throw new TimeoutError('infrastructure', { awaited: `QEMU to create ${qmpSocket(this.runDir)}`, deadline: connectDeadline, machine: this.o.machine, lastLines: proc.stderrTail().split('\n') });
    const qmp = await QmpClient.connect(qmpSocket(this.runDir), { deadline: connectDeadline, signal });
    this.qmp = qmp;
    qmp.on('event', (e: QmpEvent) => this.o.onEvent(e));
    qmp.on('close', () => void this.qmpClosed(qmp));
    for (const name of consoles) {
      const sock = await connectUnix(consoleSocket(this.runDir, name), connectDeadline, signal);
      sock.on('data', () => (this.outputSeen = true));
      attach(name, sock);
    }
    return qmp;
  }

  /** Undefined once any console has printed; else what was seen instead, within KVM_SIGN_OF_LIFE_MS. */
  async signOfLife(deadline: Deadline, signal?: AbortSignal): Promise<string | undefined> {
    const proc = this.proc;
    const wait = deadline.child(KVM_SIGN_OF_LIFE_MS, `first console output of ${this.o.machine} under KVM`);
    const r = await pollUntil(() => (this.outputSeen || !proc.running ? true : undefined), { deadline: wait, intervalMs: 20, signal });
    if (this.outputSeen) return undefined;
    if (!r.timedOut && !proc.running) {
      const exit = proc.exitStatus;
      return `QEMU exited (${exit?.signal ?? `exit code ${exit?.exitCode}`}) before the guest printed anything: ${proc.stderrTail().trim().split('\n').slice(-2).join(' / ') || 'no stderr'}`;
    }
    return `the guest printed nothing on any console for ${formatMs(KVM_SIGN_OF_LIFE_MS)}`;
  }

  /**
   * QMP quit, then SIGTERM, then SIGKILL; resolves when the process is gone (one stop at a time: a second caller waits
   * for the first). A QEMU that outlives SIGKILL is reported by the supervisor rather than waited on forever.
   */
  kill(by: string): Promise<void> {
    this.killing ??= this.stop(by).finally(() => (this.killing = undefined));
    return this.killing;
  }

  private async stop(by: string): Promise<void> {
    const proc = this.proc;
    if (!proc.running) {
      await proc.exited;
      return;
    }
    this.intent = { how: 'kill', by };
    this.qmp?.execute('quit').catch(() => undefined);
    const t0 = now();
    const gone = await raceDeadline(proc.exited, 2000);
    if (gone.timedOut) await proc.stop(2000);
    await proc.exited;
    if (now() - t0 > 5000) this.o.note(`qemu[${proc.pid}] took ${formatMs(now() - t0)} to stop`);
  }

  /** A QEMU that died closes its socket a moment before its exit is seen: that is a death, told by exited(). */
  private async qmpClosed(qmp: QmpClient): Promise<void> {
    if (this.qmp !== qmp || this.intent || !this.proc.running) return;
    if (!(await raceDeadline(this.proc.exited, 1000)).timedOut) return;
    if (this.intent) return;
    this.o.note(`QMP connection lost; stopping qemu[${this.proc.pid}]`);
    this.o.onQmpLost('its QMP connection closed while QEMU still ran, so fleetlab could not control it any more and stopped it');
    await this.kill('QMP loss').catch(() => undefined);
  }

  private exited(): void {
    const exit = this.proc.exitStatus!;
    const intent = this.intent;
    const clean = !exit.signal && exit.exitCode === 0;
    const expected = intent?.how === 'kill' || (intent?.how === 'shutdown' && clean);
    this.o.note(`qemu[${this.proc.pid}] exited (${exit.signal ? `signal ${exit.signal}` : `exit code ${exit.exitCode}`})${expected ? '' : ' unexpectedly'}`);
    // The machine's life ends first, so every wait fails with the death and what it awaited; then QMP closes.
    this.o.onExit({ expected, intent, exit });
    const qmp = this.qmp;
    this.qmp = undefined;
    qmp?.close();
    void removeTempDir(this.runDir);
  }
}
