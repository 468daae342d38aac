// The root shell channel on a virtio console (NixOS test instrumentation's backdoor), one round trip per command.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { CommandRunner, ExecOptions, ExecResult } from '../protocols/shell.ts';
import { deadlineFrom, now, type Deadline } from '../time/deadline.ts';
import { GUEST_HELPER, shellQuote } from './guest-helper.ts';

/** The line NixOS's backdoor service prints when its shell is ready. */
export const BACKDOOR_BANNER = 'Spawning backdoor root shell...';
const BANNER = Buffer.from(BACKDOOR_BANNER);
const HEADER = /(fl[0-9a-f]{16}) (\d+) (\d+) (\d+)\n/;
/** Time the guest keeps for reporting a killed command before the host's own deadline. */
const GUEST_MARGIN_MS = 1500;
const DEFAULT_TIMEOUT_MS = 900_000;

interface Pending {
  nonce: string;
  command: string;
  started: number;
  resolve: (r: { exitCode: number; out: Buffer; err: Buffer }) => void;
  reject: (e: Error) => void;
}

interface Body {
  nonce: string;
  exitCode: number;
  outLen: number;
  need: number;
  chunks: Buffer[];
  have: number;
}

/** Options the owner passes: where messages get their console lines and where commands are noted. */
export interface BackdoorShellOptions {
  lastLines: () => string[];
  note: (text: string) => void;
}

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
  /** How many times the backdoor shell has greeted: one per guest boot. */
  sessions = 0;

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
    this.closedReason = reason;
    this.socket?.destroy();
    this.socket = undefined;
    this.ready = false;
    this.failAll(new InfrastructureError(`shell channel of ${this.machineName} closed: ${reason}`));
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
    if (this.closedReason) return Promise.reject(new InfrastructureError(`shell channel of ${this.machineName} is closed: ${this.closedReason}`));
    const deadline = deadlineFrom(opts, 120_000, `shell of ${this.machineName} to come up`, 'pass { timeout } to waitForShell()');
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        remove();
        reject(
          new TimeoutError('infrastructure', {
            awaited: `the backdoor root shell on the virtio console ("${BACKDOOR_BANNER}")`,
            deadline,
            machine: this.machineName,
            lastLines: this.opts.lastLines(),
          }),
        );
      }, deadline.remaining());
      const onAbort = () => {
        remove();
        reject(opts!.signal!.reason);
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
        opts?.signal?.removeEventListener('abort', onAbort);
        this.readyWaiters = this.readyWaiters.filter((w) => w !== entry);
      };
      opts?.signal?.addEventListener('abort', onAbort, { once: true });
      this.readyWaiters.push(entry);
    });
  }

  /** Runs `command` in the guest; `timeout` is enforced in the guest (exit code 124) and, as a last resort, on the host. */
  execute(command: string, opts?: ExecOptions): Promise<ExecResult> {
    const deadline = deadlineFrom(opts, DEFAULT_TIMEOUT_MS, `command on ${this.machineName}: ${abbreviate(command)}`, 'pass { timeout } to execute()/succeed()');
    const run = this.queue.then(() => this.run(command, deadline, opts?.signal));
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

  private async run(command: string, deadline: Deadline, signal?: AbortSignal): Promise<ExecResult> {
    await this.waitReady({ deadline, signal });
    const nonce = `fl${randomBytes(8).toString('hex')}`;
    const guestSeconds = Math.max(1, Math.ceil((deadline.remaining() - GUEST_MARGIN_MS) / 1000));
    const started = now();
    const answer = new Promise<{ exitCode: number; out: Buffer; err: Buffer }>((resolve, reject) => {
      this.pending = { nonce, command, started, resolve, reject };
    });
    this.write(`__fl_run ${nonce} ${guestSeconds} ${shellQuote(command)}\n`);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.abandon(nonce, deadline)), deadline.remaining());
      onAbort = () => {
        this.abandon(nonce, deadline);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const r = await Promise.race([answer, giveUp]);
      const durationMs = now() - started;
      this.opts.note(`$ ${abbreviate(command)} -> exit ${r.exitCode} in ${Math.round(durationMs)} ms`);
      return { exitCode: r.exitCode, stdoutBytes: r.out, stdout: r.out.toString('utf8'), stderr: r.err.toString('utf8'), durationMs, budget: deadline.describe() };
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      if (this.pending?.nonce === nonce) this.pending = undefined;
    }
  }

  /** The host stops waiting for `nonce`; its answer, when it comes, is dropped so the channel stays in step. */
  private abandon(nonce: string, deadline: Deadline): TimeoutError {
    const p = this.pending;
    if (p?.nonce === nonce) {
      this.orphans.add(nonce);
      this.pending = undefined;
    }
    this.opts.note(`$ ${abbreviate(p?.command ?? nonce)} -> no answer within ${deadline.describe()}`);
    return new TimeoutError('infrastructure', {
      awaited: `the guest shell to answer command: ${abbreviate(p?.command ?? '?')}`,
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
    for (;;) {
      if (this.body) {
        const b = this.body;
        const take = Math.min(b.need - b.have, chunk.length);
        b.chunks.push(chunk.subarray(0, take));
        b.have += take;
        chunk = chunk.subarray(take);
        if (b.have < b.need) return;
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
        this.rx = this.rx.subarray(eol + 1);
        this.onBanner();
        chunk = this.rx;
        this.rx = Buffer.alloc(0);
        if (!chunk.length) return;
        continue;
      }
      if (!header) {
        // Nothing but headers and banners belongs here; keep a tail that may hold half of one.
        if (this.rx.length > 4096) this.rx = this.rx.subarray(this.rx.length - 256);
        return;
      }
      chunk = this.rx.subarray(header.end);
      this.rx = Buffer.alloc(0);
      this.body = { nonce: header.nonce, exitCode: header.exitCode, outLen: header.outLen, need: header.outLen + header.errLen, chunks: [], have: 0 };
      if (this.body.need === 0) {
        const b = this.body;
        this.body = undefined;
        this.deliver(b);
      }
      if (!chunk.length) return;
    }
  }

  /** The earliest header in rx for a nonce this side is waiting on; other text cannot start a body. */
  private findHeader(): { index: number; end: number; nonce: string; exitCode: number; outLen: number; errLen: number } | undefined {
    const expected = [this.pending?.nonce, this.setupNonce, ...this.orphans].filter((n): n is string => !!n);
    let best: ReturnType<BackdoorShell['findHeader']>;
    for (const nonce of expected) {
      for (let at = this.rx.indexOf(nonce); at >= 0; at = this.rx.indexOf(nonce, at + 1)) {
        const m = HEADER.exec(this.rx.subarray(at, at + 80).toString('latin1'));
        if (!m || m.index !== 0) continue;
        if (!best || at < best.index) best = { index: at, end: at + m[0].length, nonce, exitCode: Number(m[2]), outLen: Number(m[3]), errLen: Number(m[4]) };
        break;
      }
    }
    return best;
  }

  private deliver(b: Body): void {
    const all = Buffer.concat(b.chunks, b.need);
    const result = { exitCode: b.exitCode, out: all.subarray(0, b.outLen), err: all.subarray(b.outLen) };
    if (this.orphans.delete(b.nonce)) return;
    if (this.pending?.nonce === b.nonce) {
      const p = this.pending;
      this.pending = undefined;
      p.resolve(result);
    } else if (b.nonce === this.setupNonce) {
      this.setupNonce = undefined;
      this.ready = true;
      for (const w of this.readyWaiters.slice()) w.resolve();
    }
  }

  private setupNonce: string | undefined;

  private onBanner(): void {
    this.sessions++;
    this.ready = false;
    this.orphans.clear();
    this.body = undefined;
    if (this.pending) {
      const p = this.pending;
      this.pending = undefined;
      p.reject(new InfrastructureError(`the shell of ${this.machineName} restarted (guest rebooted?) while running: ${abbreviate(p.command)}`));
    }
    this.setupNonce = `fl${randomBytes(8).toString('hex')}`;
    this.write(`${GUEST_HELPER}__fl_run ${this.setupNonce} 30 true\n`);
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
