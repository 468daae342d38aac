// Supervised child processes: registered, tied to the runner's life, stopped gracefully then forcibly.
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import { raceDeadline } from '../time/deadline.ts';

/** How a supervised child ended. */
export interface ChildExit {
  exitCode: number | null;
  signal: string | null;
}

/** Options for spawning a supervised child. */
export interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Kill the child with SIGKILL when this process dies, even by SIGKILL (util-linux setpriv --pdeathsig). Default true. */
  dieWithParent?: boolean;
  /** Called with every line the child prints, prefixed by nothing; the caller tags it. */
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /**
   * Run the child in a process group of its own and signal the whole group: for a script whose own children (ssh,
   * tar) must end with it.
   */
  processGroup?: boolean;
  /** Give the child a pipe on stdin, written with write(); by default its stdin is /dev/null. */
  stdinPipe?: boolean;
}

const STDERR_TAIL_BYTES = 16 * 1024;
const registry = new Set<SupervisedProcess>();
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** A registered child process with its name, pid and the tail of its stderr. */
export class SupervisedProcess {
  readonly name: string;
  readonly argv: string[];
  readonly exited: Promise<ChildExit>;
  private readonly child: ResultPromise;
  private stderrBuf = '';
  private exit: ChildExit | undefined;
  private readonly group: boolean;

  constructor(name: string, file: string, args: string[], opts: SpawnOptions = {}) {
    this.name = name;
    this.argv = [file, ...args];
    const dieWithParent = opts.dieWithParent ?? true;
    const [cmd, ...cmdArgs] = dieWithParent && SETPRIV ? [SETPRIV, '--pdeathsig', 'KILL', '--', file, ...args] : [file, ...args];
    this.child = execa(cmd!, cmdArgs, {
      cwd: opts.cwd,
      env: opts.env,
      extendEnv: true,
      stdin: opts.stdinPipe ? 'pipe' : 'ignore',
      buffer: false,
      reject: false,
      cleanup: true,
      detached: !!opts.processGroup,
    });
    this.group = !!opts.processGroup;
    // A child that has exited closes its end: the write fails with EPIPE, and its exit is what the caller hears of.
    this.child.stdin?.on('error', () => undefined);
    registry.add(this);
    let partial = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr'] as const) {
      this.child[stream]?.setEncoding('utf8');
      this.child[stream]?.on('data', (chunk: string) => {
        if (stream === 'stderr') this.stderrBuf = (this.stderrBuf + chunk).slice(-STDERR_TAIL_BYTES);
        if (!opts.onLine) return;
        const lines = (partial[stream] + chunk).split('\n');
        partial[stream] = lines.pop()!;
        for (const line of lines) opts.onLine(stream, line);
      });
    }
    this.exited = new Promise<ChildExit>((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { exitCode: code, signal };
        registry.delete(this);
        for (const stream of ['stdout', 'stderr'] as const) if (partial[stream] && opts.onLine) opts.onLine(stream, partial[stream]);
        partial = { stdout: '', stderr: '' };
        resolve(this.exit);
      });
      this.child.on('error', () => {
        /* spawn failures surface as an exit with code null; see exited */
      });
    });
    // execa's promise rejects only with reject: true; keep it from floating.
    this.child.catch(() => undefined);
  }

  /**
   * Writes to the child's stdin (stdinPipe). libuv writes to a pipe at once when nothing is queued before, so a short
   * text is in the pipe when this returns.
   */
  write(text: string): void {
    if (!this.child.stdin) throw new Error(`${this.tag} was started without a stdin pipe`);
    if (this.running && this.child.stdin.writable) this.child.stdin.write(text);
  }

  /** Closes the child's stdin (stdinPipe): end of input. */
  endInput(): void {
    this.child.stdin?.end();
  }

  /** The child's pid (the setpriv wrapper execs the program, so it is the program's pid). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True until the child has exited. */
  get running(): boolean {
    return this.exit === undefined;
  }

  /** How the child ended, once it has. */
  get exitStatus(): ChildExit | undefined {
    return this.exit;
  }

  /** The last lines the child wrote to stderr. */
  stderrTail(): string {
    return this.stderrBuf;
  }

  /** "qemu[1234]": the name and pid that tag this child's output lines. */
  get tag(): string {
    return `${this.name}[${this.pid ?? '?'}]`;
  }

  /** Sends a signal if the child still runs. */
  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    if (this.group && this.child.pid) {
      try {
        process.kill(-this.child.pid, sig);
        return;
      } catch {
        /* the group is gone already: signal the child alone */
      }
    }
    this.child.kill(sig);
  }

  /**
   * Stops the child: SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. A process that outlives
   * SIGKILL by `killWaitMs` (a QEMU whose vCPU is stuck in the kernel under KVM) is an InfrastructureError naming it.
   */
  async stop(graceMs = 3000, killWaitMs = 10_000): Promise<ChildExit> {
    if (!this.running) return this.exit!;
    this.signal('SIGTERM');
    const ended = await raceDeadline(this.exited, graceMs);
    if (!ended.timedOut) return ended.value;
    this.signal('SIGKILL');
    const killed = await raceDeadline(this.exited, killWaitMs);
    if (!killed.timedOut) return killed.value;
    throw new InfrastructureError(
      `${this.tag} did not exit within ${killWaitMs / 1000} s of SIGKILL (a process stuck in the kernel, such as a QEMU vCPU under KVM); it may still be running: check pid ${this.pid}.`,
      { details: { process: this.name, pid: this.pid } },
    );
  }

  /**
   * Throws an InfrastructureError with the exit code and stderr if the child exits within `settleMs`:
   * an immediate exit at start is an error, not a silent hang later.
   */
  async assertStarted(settleMs: number): Promise<void> {
    const ended = await raceDeadline(this.exited, settleMs);
    if (!ended.timedOut) throw this.exitError('exited right after it started');
  }

  /** An InfrastructureError describing this child's exit, with the tail of its stderr. */
  exitError(what: string): InfrastructureError {
    const exit = this.exit;
    const how = exit ? (exit.signal ? `signal ${exit.signal}` : `exit code ${exit.exitCode}`) : 'unknown status';
    const stderr = this.stderrBuf.trim();
    return new InfrastructureError(
      `${this.name} ${what} (${how}).\n  command: ${this.argv.join(' ')}\n${stderr ? `  stderr:\n${stderr.split('\n').slice(-20).map((l) => `    ${l}`).join('\n')}` : '  stderr was empty.'}`,
      { details: { process: this.name, pid: this.pid, exitCode: exit?.exitCode, signal: exit?.signal, stderr } },
    );
  }
}

/** Starts a supervised child process. */
export function spawnSupervised(name: string, file: string, args: string[], opts: SpawnOptions = {}): SupervisedProcess {
  return new SupervisedProcess(name, file, args, opts);
}

/** The children still running, for shutdown paths and leak checks. */
export function runningChildren(): SupervisedProcess[] {
  return [...registry];
}

/** Kills every registered child with SIGKILL, synchronously: the last resort on exit. */
export function killAllChildrenSync(): void {
  for (const p of registry) p.signal('SIGKILL');
}

/** Stops every registered child gracefully, in parallel. */
export async function stopAllChildren(graceMs = 2000): Promise<void> {
  await Promise.allSettled([...registry].map((p) => p.stop(graceMs)));
}

process.on('exit', killAllChildrenSync);
