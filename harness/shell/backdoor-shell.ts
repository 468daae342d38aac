// The root shell channel on a virtio console (NixOS test instrumentation's backdoor), one round trip per command.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ConsoleLog } from '../console/console-log.ts';
import { ConfigurationError, InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { CommandRunner, ExecOptions, ExecResult } from '../protocols/shell.ts';
import { deadlineFrom, formatMs, now, type Deadline } from '../time/deadline.ts';
import { abortError, withLife, type Lifeline } from '../time/lifeline.ts';
import { GUEST_HELPER, shellQuote } from './guest-helper.ts';

/** The line NixOS's backdoor service prints when its shell is ready. */
export const BACKDOOR_BANNER = 'Spawning backdoor root shell...';
const BANNER = Buffer.from(BACKDOOR_BANNER);
const HEADER = /(fl[0-9a-f]{16}) (\d+) (\d+) (\d+) ([T-])\n/;
/**
 * The guest kills a command once its whole budget has run out (rounded up to whole seconds); the host waits this much
 * longer for the guest's answer before it gives up on its own, so a command always gets at least the time it was given.
 */
const HOST_GRACE_MS = 3000;
/** After a guest reset, how long a console check (a panic's lines) has to end a command's wait before the reset does. */
const RESET_GRACE_MS = 500;
const DEFAULT_TIMEOUT_MS = 900_000;

interface Answer {
  exitCode: number;
  /** The guest's watchdog killed the command at its timeout. */
  killed: boolean;
  out: Buffer;
  err: Buffer;
}

interface Pending {
  nonce: string;
  command: string;
  started: number;
  resolve: (r: Answer) => void;
  reject: (e: Error) => void;
}

interface Body {
  nonce: string;
  exitCode: number;
  killed: boolean;
  outLen: number;
  need: number;
  chunks: Buffer[];
  have: number;
  /** Bytes acknowledged so far (see ACK_CHUNK). */
  acked: number;
}

/**
 * Flow control. QEMU drops a virtconsole's output when its socket backend would block (virtio-console.c flush_buf,
 * "silently dropping console data on EAGAIN"), so a busy host could lose part of a large answer. The guest therefore
 * sends each stream of an answer longer than ACK_CHUNK in chunks of ACK_CHUNK bytes and waits for a newline from the
 * host before each next chunk: never more than ACK_CHUNK bytes are in flight. Answers up to ACK_CHUNK go in one piece.
 */
export const ACK_CHUNK = 65536;

/** Where in a body the host next owes an acknowledgement: chunk ends inside stdout, then inside stderr, else its end. */
function nextAck(b: Body): number {
  const next = (acked: number) => (Math.floor(acked / ACK_CHUNK) + 1) * ACK_CHUNK;
  if (b.outLen > ACK_CHUNK && b.acked < b.outLen && next(b.acked) < b.outLen) return next(b.acked);
  const errLen = b.need - b.outLen;
  const inErr = next(Math.max(0, b.acked - b.outLen));
  if (errLen > ACK_CHUNK && inErr < errLen) return b.outLen + inErr;
  return b.need;
}

/** Options the owner passes: where messages get their console lines and where commands are noted. */
export interface BackdoorShellOptions {
  lastLines: () => string[];
  note: (text: string) => void;
  /** The lifeline of what carries the channel now (the QEMU process); every wait races it. */
  life?: () => Lifeline | undefined;
  /** Where the channel's own bytes go (greetings, the shell's complaints, headers); command output is noted by size. */
  log?: ConsoleLog;
  /**
   * The line's silence limit (a serial-login profile's guest.shell.silenceLimitSeconds): while a command runs the
   * guest sends a heartbeat every quarter of it (guest-helper.ts), and `onSilent` is called once nothing at all has
   * come over the channel for longer than `limitMs`: the machine hangs. Its owner ends the machine's life with it.
   */
  silence?: { limitMs: number; onSilent: (silentMs: number, command: string) => void };
  /** Whether a command runs strictly when its call does not say (the profile's guest.shell.strict; default true). */
  strict?: boolean;
}

/**
 * The silence option of a machine whose profile's shell is `shell`: its serial-login `silenceLimitSeconds`, with
 * `onSilent` told the limit too (for its message); undefined without a limit.
 */
export function silenceOf(shell: { kind: string; silenceLimitSeconds?: number }, onSilent: (silentMs: number, limitS: number) => void): BackdoorShellOptions['silence'] {
  const limitS = shell.kind === 'serial-login' ? shell.silenceLimitSeconds : undefined;
  // (A profile's guest.shell; typed by shape, so the shell channel imports nothing of the QEMU provider.)
  return limitS === undefined ? undefined : { limitMs: limitS * 1000, onSilent: (ms) => onSilent(ms, limitS) };
}

/** How often the host looks for a silent line while a command runs. */
const SILENCE_CHECK_MS = 1000;

/** A CommandRunner over the backdoor shell's byte stream. */
export class BackdoorShell implements CommandRunner {
  readonly machineName: string;
  private readonly opts: BackdoorShellOptions;
  private socket: Socket | undefined;
  private rx: Buffer = Buffer.alloc(0);
  private body: Body | undefined;
  private pending: Pending | undefined;
  /** Commands whose host side gave up; their answers are read and dropped. */
  private readonly orphans = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private ready = false;
  private readyWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly sessionListeners = new Set<() => void>();
  private closedReason: string | undefined;
  /** Set when the guest lacks what the channel needs: every wait fails with it until the next greeting. */
  private setupFailure: Error | undefined;
  /** How the guest's watchdog counts down: "read -t" or "sleep" (shells without read -t, such as dash). */
  watchdog: string | undefined;
  /** How many times the backdoor shell has greeted: one per guest boot. */
  sessions = 0;
  /** When the channel last received a byte (ms, performance clock): the silence watch reads it. */
  private lastRx = 0;

  constructor(machineName: string, opts: BackdoorShellOptions) {
    this.machineName = machineName;
    this.opts = opts;
  }

  /** Reads the channel from `socket` from now on (a fresh QEMU process). */
  attach(socket: Socket): void {
    this.socket = socket;
    this.closedReason = undefined;
    this.ready = false;
    this.rx = Buffer.alloc(0);
    this.body = undefined;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** The machine stopped: every waiter fails with `reason`. */
  detach(reason: string): void {
    this.logRx(this.rx.length);
    this.closedReason = reason;
    this.socket?.destroy();
    this.socket = undefined;
    this.ready = false;
    this.failAll(new InfrastructureError(`shell channel of ${this.machineName} closed: ${reason}`));
  }

  /**
   * The guest reset (QEMU reported it): the shell session died with the old kernel. A command in flight fails now,
   * half an answer is dropped, and nothing more is sent until the next boot's shell greets and takes the helper.
   * Without this, an answer cut short by the reset would swallow the next greeting as its missing bytes, and commands
   * would go to a fresh shell that never took the helper ("__fl_run: not found").
   */
  guestReset(): void {
    this.logRx(this.rx.length);
    this.rx = Buffer.alloc(0);
    this.ready = false;
    this.body = undefined;
    this.setupNonce = undefined;
    this.orphans.clear();
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      const err = new InfrastructureError(`the guest ${this.machineName} reset (rebooted) while running: ${abbreviate(p.command)}`);
      // A console check that explains the reset ends the wait first (a panic with panic=-1 resets at once): its lines
      // and QEMU's reset event come over different sockets, in either order. The session is over now either way.
      setTimeout(() => p.reject(err), RESET_GRACE_MS).unref();
    }
  }

  /**
   * The guest was restored from a snapshot taken while its shell waited for a command: no greeting will come, so the
   * helper is sent again with a fresh nonce, as if it had greeted (it is the same session: `sessions` stays).
   */
  resume(): void {
    this.rx = Buffer.alloc(0);
    this.sendHelper();
  }

  /** A new setup: whatever the channel held is dropped, and the helper goes out with a fresh nonce. */
  private sendHelper(): void {
    this.ready = false;
    this.setupFailure = undefined;
    this.orphans.clear();
    this.body = undefined;
    this.setupNonce = `fl${randomBytes(8).toString('hex')}`;
    this.write(`${GUEST_HELPER}__fl_hb=${this.heartbeatSeconds ?? ''}\n__fl_check ${this.setupNonce}\n`);
  }

  /** Calls `fn` each time a new shell session greets (each boot). */
  onSession(fn: () => void): () => void {
    this.sessionListeners.add(fn);
    return () => this.sessionListeners.delete(fn);
  }

  /** True while a greeted shell is set up and answering. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Waits until the shell has greeted and accepted the helper. */
  waitReady(opts?: ExecOptions): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.setupFailure) return Promise.reject(this.setupFailure);
    const awaited = `the backdoor root shell ("${BACKDOOR_BANNER}") to greet and take fleetlab's helper`;
    const life = this.opts.life?.();
    if (life?.ended) return Promise.reject(life.reason!.during(awaited));
    if (this.closedReason) return Promise.reject(new InfrastructureError(`shell channel of ${this.machineName} is closed: ${this.closedReason}`));
    const deadline = deadlineFrom(opts, 120_000, `shell of ${this.machineName} to come up`, 'pass { timeout } to waitForShell(), or --timeout-scale for a run');
    const signal = withLife(opts?.signal, life);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        remove();
        this.logRx(this.rx.length);
        reject(
          new TimeoutError('infrastructure', {
            awaited,
            deadline,
            machine: this.machineName,
            lastLines: this.opts.lastLines(),
          }),
        );
      }, deadline.remaining());
      const onAbort = () => {
        remove();
        reject(abortError(signal!, awaited));
      };
      const entry = {
        resolve: () => {
          remove();
          resolve();
        },
        reject: (e: Error) => {
          remove();
          reject(e);
        },
      };
      const remove = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.readyWaiters = this.readyWaiters.filter((w) => w !== entry);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.readyWaiters.push(entry);
    });
  }

  /** Runs `command` in the guest; `timeout` is enforced in the guest (exit code 124) and, as a last resort, on the host. */
  execute(command: string, opts?: ExecOptions): Promise<ExecResult> {
    const deadline = deadlineFrom(opts, DEFAULT_TIMEOUT_MS, `command on ${this.machineName}: ${abbreviate(command)}`, 'pass { timeout } to execute()/succeed()');
    const strict = opts?.strict ?? this.opts.strict ?? true;
    const run = this.queue.then(() => this.run(command, deadline, opts?.signal, strict));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Writes a command without waiting for an answer: for reboot and poweroff, which end the session. */
  async sendBlind(command: string, opts?: ExecOptions): Promise<void> {
    const deadline = deadlineFrom(opts, 120_000, `shell of ${this.machineName} to take a command`);
    await this.queue;
    await this.waitReady({ deadline, signal: opts?.signal });
    this.opts.note(`$ ${abbreviate(command)} (not waiting for an answer)`);
    this.ready = false;
    this.write(`${command}\n`);
  }

  private async run(command: string, deadline: Deadline, userSignal: AbortSignal | undefined, strict: boolean): Promise<ExecResult> {
    const signal = withLife(userSignal, this.opts.life?.());
    const awaited = `the guest shell to answer command: ${abbreviate(command)}`;
    await this.waitReady({ deadline, signal });
    const nonce = `fl${randomBytes(8).toString('hex')}`;
    // The guest gets all of the budget, rounded up to whole seconds; the host waits a little longer for its answer.
    const budgetMs = deadline.remaining();
    const guestSeconds = Math.max(1, Math.ceil(budgetMs / 1000));
    const started = now();
    const answer = new Promise<Answer>((resolve, reject) => {
      this.pending = { nonce, command, started, resolve, reject };
    });
    this.write(`__fl_run ${nonce} ${guestSeconds} ${shellQuote(command)}${strict ? ' s' : ''}\n`);
    const watch = this.watchSilence(nonce, command);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.abandon(nonce, deadline, guestSeconds)), guestSeconds * 1000 + HOST_GRACE_MS);
      onAbort = () => {
        this.abandon(nonce, deadline, guestSeconds);
        reject(abortError(signal!, awaited));
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const r = await Promise.race([answer, giveUp]);
      const durationMs = now() - started;
      this.opts.note(`$ ${abbreviate(command)} -> exit ${r.exitCode}${r.killed ? ' (killed at its timeout)' : ''} in ${Math.round(durationMs)} ms`);
      return {
        exitCode: r.exitCode,
        stdoutBytes: r.out,
        stdout: r.out.toString('utf8'),
        stderr: r.err.toString('utf8'),
        durationMs,
        budget: deadline.describe(),
        timedOut: r.killed,
        budgetMs: guestSeconds * 1000,
      };
    } finally {
      clearTimeout(timer);
      clearInterval(watch);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      if (this.pending?.nonce === nonce) this.pending = undefined;
    }
  }

  /** How often the guest sends a heartbeat while a command runs (a quarter of the silence limit); none without one. */
  private get heartbeatSeconds(): number | undefined {
    return this.opts.silence && Math.max(1, Math.floor(this.opts.silence.limitMs / 4000));
  }

  /**
   * While command `nonce` runs, checks every second that the channel has received something within the silence limit
   * (heartbeats at least); past it, tells the owner once. A silence seen by a timer is checked again after pending I/O
   * has been read (setImmediate runs after the poll phase), so a host event loop that was busy is not a silent line.
   */
  private watchSilence(nonce: string, command: string): NodeJS.Timeout | undefined {
    const silence = this.opts.silence;
    if (!silence) return undefined;
    this.lastRx = now();
    const silentFor = () => now() - this.lastRx;
    const watch: NodeJS.Timeout = setInterval(() => {
      if (silentFor() <= silence.limitMs) return;
      setImmediate(() => {
        if (silentFor() <= silence.limitMs || this.pending?.nonce !== nonce) return;
        clearInterval(watch);
        this.opts.note(`nothing on the line for ${formatMs(silentFor())} while running: ${abbreviate(command)} (heartbeats expected every ${this.heartbeatSeconds} s)`);
        silence.onSilent(silentFor(), command);
      });
    }, SILENCE_CHECK_MS);
    watch.unref();
    return watch;
  }

  /** The host stops waiting for `nonce`; its answer, when it comes, is dropped so the channel stays in step. */
  private abandon(nonce: string, deadline: Deadline, guestSeconds: number): TimeoutError {
    const p = this.pending;
    if (p?.nonce === nonce) {
      this.orphans.add(nonce);
      this.pending = undefined;
    }
    this.opts.note(`$ ${abbreviate(p?.command ?? nonce)} -> no answer within ${deadline.describe()} + ${formatMs(HOST_GRACE_MS)}`);
    return new TimeoutError('infrastructure', {
      awaited: `the guest shell to answer command: ${abbreviate(p?.command ?? '?')} (the guest's watchdog should have killed it after ${guestSeconds} s; no answer ${formatMs(HOST_GRACE_MS)} later: guest hung or channel broken)`,
      deadline,
      machine: this.machineName,
      lastLines: this.opts.lastLines(),
    });
  }

  private write(text: string): void {
    if (!this.socket) throw new InfrastructureError(`shell channel of ${this.machineName} is not connected (machine not running?)`);
    this.socket.write(text);
  }

  private onData(chunk: Buffer): void {
    this.lastRx = now();
    for (;;) {
      if (this.body) {
        const b = this.body;
        // Take at most up to the next acknowledgement point: the guest sends no more before it.
        const take = Math.min(b.need - b.have, chunk.length, nextAck(b) - b.have);
        b.chunks.push(chunk.subarray(0, take));
        b.have += take;
        chunk = chunk.subarray(take);
        if (b.have === nextAck(b) && b.have < b.need) {
          b.acked = b.have;
          this.socket?.write('\n');
        }
        if (b.have < b.need) {
          if (!chunk.length) return;
          continue;
        }
        this.body = undefined;
        this.deliver(b);
        if (!chunk.length) return;
      }
      this.rx = this.rx.length ? Buffer.concat([this.rx, chunk]) : chunk;
      chunk = Buffer.alloc(0);
      const bannerAt = this.rx.indexOf(BANNER);
      const header = this.findHeader();
      if (bannerAt >= 0 && (!header || bannerAt < header.index)) {
        const eol = this.rx.indexOf(0x0a, bannerAt);
        if (eol < 0) return;
        this.logRx(eol + 1);
        this.rx = this.rx.subarray(eol + 1);
        this.onBanner();
        chunk = this.rx;
        this.rx = Buffer.alloc(0);
        if (!chunk.length) return;
        continue;
      }
      if (!header) {
        // Nothing but headers and banners belongs here; keep a tail that may hold half of one.
        if (this.rx.length > 4096) {
          this.logRx(this.rx.length - 256);
          this.rx = this.rx.subarray(this.rx.length - 256);
        }
        return;
      }
      this.logRx(header.end);
      if (header.outLen + header.errLen > 0) this.opts.log?.note(`${header.outLen + header.errLen} bytes of command output (${header.outLen} stdout, ${header.errLen} stderr) for ${header.nonce}`);
      chunk = this.rx.subarray(header.end);
      this.rx = Buffer.alloc(0);
      this.body = { nonce: header.nonce, exitCode: header.exitCode, killed: header.killed, outLen: header.outLen, need: header.outLen + header.errLen, chunks: [], have: 0, acked: 0 };
      if (this.body.need === 0) {
        const b = this.body;
        this.body = undefined;
        this.deliver(b);
      }
      if (!chunk.length) return;
    }
  }

  /** The earliest header in rx for a nonce this side is waiting on; other text cannot start a body. */
  /** The channel's own bytes up to `end` of rx, into the channel's log. */
  private logRx(end: number): void {
    if (end > 0) this.opts.log?.push(Buffer.from(this.rx.subarray(0, end)));
  }

  private findHeader(): { index: number; end: number; nonce: string; exitCode: number; outLen: number; errLen: number; killed: boolean } | undefined {
    const expected = [this.pending?.nonce, this.setupNonce, ...this.orphans].filter((n): n is string => !!n);
    let best: ReturnType<BackdoorShell['findHeader']>;
    for (const nonce of expected) {
      for (let at = this.rx.indexOf(nonce); at >= 0; at = this.rx.indexOf(nonce, at + 1)) {
        const m = HEADER.exec(this.rx.subarray(at, at + 80).toString('latin1'));
        if (!m || m.index !== 0) continue;
        if (!best || at < best.index) best = { index: at, end: at + m[0].length, nonce, exitCode: Number(m[2]), outLen: Number(m[3]), errLen: Number(m[4]), killed: m[5] === 'T' };
        break;
      }
    }
    return best;
  }

  private deliver(b: Body): void {
    const all = Buffer.concat(b.chunks, b.need);
    const result: Answer = { exitCode: b.exitCode, killed: b.killed, out: all.subarray(0, b.outLen), err: all.subarray(b.outLen) };
    if (this.orphans.delete(b.nonce)) return;
    if (this.pending?.nonce === b.nonce) {
      const p = this.pending;
      this.pending = undefined;
      p.resolve(result);
    } else if (b.nonce === this.setupNonce) {
      // Ready only when the helper's own check and a command round trip both said yes (exit 0).
      this.setupNonce = undefined;
      if (result.exitCode !== 0) {
        const said = (result.out.toString('utf8') + result.err.toString('utf8')).trim() || `exit code ${result.exitCode}`;
        this.setupFailure = new ConfigurationError(
          `The shell channel of ${this.machineName} cannot run in this guest: ${said}. fleetlab's helper needs a POSIX sh with head, wc, rm, mkdir, dd, ` +
            `a mounted /proc, a writable /tmp, and mkfifo (shells whose read has -t) or sleep (shells without, such as dash); add them to the image.`,
          { details: { machine: this.machineName, answer: said } },
        );
        this.opts.note(`shell channel setup failed: ${said}`);
        for (const w of this.readyWaiters.slice()) w.reject(this.setupFailure);
        return;
      }
      this.watchdog = result.out.toString('utf8').trim() === '1' ? 'read -t' : 'sleep per command';
      this.opts.note(`shell channel ready (guest watchdog: ${this.watchdog})`);
      this.ready = true;
      for (const w of this.readyWaiters.slice()) w.resolve();
    }
  }

  private setupNonce: string | undefined;

  private onBanner(): void {
    this.sessions++;
    if (this.pending) {
      const p = this.pending;
      this.pending = undefined;
      p.reject(new InfrastructureError(`the shell of ${this.machineName} restarted (guest rebooted?) while running: ${abbreviate(p.command)}`));
    }
    this.sendHelper();
    for (const fn of this.sessionListeners) fn();
  }

  private failAll(err: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
    for (const w of this.readyWaiters.slice()) w.reject(err);
  }
}

/** A command shortened for messages and logs. */
export function abbreviate(command: string, max = 200): string {
  const one = command.replace(/\s*\n\s*/g, ' ⏎ ');
  return one.length > max ? `${one.slice(0, max)}…` : one;
}
