// Deadlines on one monotonic clock: public APIs take { timeout } and turn it into a Deadline at once.
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { durationMs, type Duration } from './duration.ts';
import { formatMs } from './format.ts';
import { abortError } from './lifeline.ts';

/** The deadline of the step or scenario the current code runs in (set by the runner). */
const ambient = new AsyncLocalStorage<Deadline>();

/** Runs `fn` with `deadline` as the parent of every wait inside it that names no parent of its own. */
export function withDeadline<T>(deadline: Deadline, fn: () => T): T {
  return ambient.run(deadline, fn);
}

/** The deadline of the step or scenario running now, if any. */
export function currentDeadline(): Deadline | undefined {
  return ambient.getStore();
}

/** Runs `fn` outside every step's and scenario's deadline: its waits get their own defaults (a REPL's commands). */
export function outsideDeadlines<T>(fn: () => T): T {
  return ambient.exit(fn);
}

/** Milliseconds on the monotonic clock every deadline in fleetlab uses. */
export function now(): number {
  return performance.now();
}

/** Global multiplier for every timeout (`--timeout-scale`): slow TCG hosts, real boards. */
let timeoutScale = 1;

/** Sets the multiplier applied to every timeout created after the call. */
export function setTimeoutScale(scale: number): void {
  if (!Number.isFinite(scale) || scale <= 0) throw new RangeError(`timeout scale must be a positive number, got ${scale}`);
  timeoutScale = scale;
}

/** The multiplier applied to every timeout. */
export function getTimeoutScale(): number {
  return timeoutScale;
}

/** A named budget that ends at an absolute time; an inner deadline never outlives its parent. */
export class Deadline {
  /** Absolute end on the monotonic clock (ms), less the time suspended so far. */
  private end: number;
  /** When suspend() stopped its clock (a pause), until it goes on. */
  private suspendedAt: number | undefined;
  /** Length of this budget in ms, after scaling. */
  readonly budgetMs: number;
  /** What the budget is for: "shell command 'ls'", "scenario 'smoke'". */
  readonly label: string;
  /** How a user raises this budget: "pass { timeout } to execute()". */
  readonly hint: string | undefined;
  readonly parent: Deadline | undefined;

  private constructor(budgetMs: number, label: string, parent?: Deadline, hint?: string) {
    this.budgetMs = budgetMs;
    this.end = now() + budgetMs;
    this.label = label;
    this.parent = parent;
    this.hint = hint;
  }

  /** A deadline `ms` from now (scaled by the timeout scale), bounded by `parent`. */
  static after(ms: number, label: string, opts: { parent?: Deadline; hint?: string; unscaled?: boolean } = {}): Deadline {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`timeout for ${label} must be a non-negative number of ms, got ${ms}`);
    return new Deadline(opts.unscaled ? ms : ms * timeoutScale, label, opts.parent, opts.hint);
  }

  /** Absolute end on the monotonic clock (ms); while suspended, it moves on with the clock. */
  get at(): number {
    return this.suspendedAt === undefined ? this.end : this.end + (now() - this.suspendedAt);
  }

  /**
   * Stops the clock of this deadline and its ancestors until the returned function is called: the time a scenario
   * spends paused (ctx.pause, a REPL) does not count against it. Waits racing it (raceDeadline) see it still has
   * time when their timer fires and wait on.
   */
  suspend(): () => void {
    const chain: Deadline[] = [];
    for (let d: Deadline | undefined = this; d; d = d.parent) {
      if (d.suspendedAt !== undefined) continue;
      d.suspendedAt = now();
      chain.push(d);
    }
    return () => {
      for (const d of chain.splice(0)) {
        d.end += now() - d.suspendedAt!;
        d.suspendedAt = undefined;
      }
    };
  }

  /** A child budget: the earlier of `ms` from now and this deadline. */
  child(ms: number, label: string, hint?: string): Deadline {
    return Deadline.after(ms, label, { parent: this, hint });
  }

  /** Milliseconds left before this deadline or any ancestor expires (never negative). */
  remaining(): number {
    return Math.max(0, this.binding().at - now());
  }

  /** True once this deadline or an ancestor has passed. */
  expired(): boolean {
    return this.remaining() <= 0;
  }

  /** The deadline in the chain that expires first: the one to name in a timeout message. */
  binding(): Deadline {
    let best: Deadline = this;
    for (let d = this.parent; d; d = d.parent) if (d.at < best.at) best = d;
    return best;
  }

  /** "shell command 'x' (30 s)": the budget that binds, for messages. */
  describe(): string {
    const b = this.binding();
    return `${b.label} (${formatMs(b.budgetMs)})`;
  }
}

/** Resolves a `{ timeout }` option (ms, or a string with a unit: '10s') and optional parent into a Deadline. */
export function deadlineFrom(
  opts: { timeout?: Duration; deadline?: Deadline } | undefined,
  defaultMs: number,
  label: string,
  hint?: string,
): Deadline {
  const ms = opts?.timeout === undefined ? defaultMs : durationMs(opts.timeout, `the timeout of ${label}`);
  return Deadline.after(ms, label, { parent: opts?.deadline ?? ambient.getStore(), hint });
}

export { formatMs };

/** Sleeps `ms`, or less if the deadline comes first; rejects when the signal aborts (naming `awaited` if a machine died). */
export function sleep(ms: number, opts: { deadline?: Deadline; signal?: AbortSignal; awaited?: string } = {}): Promise<void> {
  const wait = Math.max(0, Math.min(ms, opts.deadline ? opts.deadline.remaining() : ms));
  const awaited = opts.awaited ?? `a pause of ${formatMs(ms)}`;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(abortError(opts.signal, awaited));
    const timer = setTimeout(done, wait);
    function done() {
      opts.signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(abortError(opts.signal!, awaited));
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Polls `probe` until it returns a value other than undefined or the deadline passes; never throws on timeout. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  opts: { deadline: Deadline; intervalMs?: number; signal?: AbortSignal; awaited?: string },
): Promise<{ timedOut: false; value: T } | { timedOut: true }> {
  const interval = opts.intervalMs ?? 100;
  for (;;) {
    if (opts.signal?.aborted) throw abortError(opts.signal, opts.awaited ?? opts.deadline.label);
    const value = await probe();
    if (value !== undefined) return { timedOut: false, value };
    if (opts.deadline.expired()) return { timedOut: true };
    await sleep(interval, opts);
  }
}

/**
 * Waits for `promise` until `deadline` (or `ms` when given a number) or until `signal` aborts (a machine's death
 * among its reasons: the error then names `awaited`); clears its timer either way, so nothing keeps the process alive.
 */
export function raceDeadline<T>(
  promise: Promise<T>,
  deadline: Deadline | number,
  signal?: AbortSignal,
  awaited?: string,
): Promise<{ timedOut: false; value: T } | { timedOut: true }> {
  const ms = typeof deadline === 'number' ? deadline : deadline.remaining();
  return new Promise((resolve, reject) => {
    // A deadline suspended while waiting (a pause: Deadline.suspend) gets a new timer for what it has left.
    const fire = () => {
      const left = typeof deadline === 'number' ? 0 : deadline.remaining();
      if (left > 0) {
        timer = setTimeout(fire, left);
        return;
      }
      cleanup();
      resolve({ timedOut: true });
    };
    let timer = setTimeout(fire, ms);
    const onAbort = () => {
      cleanup();
      reject(abortError(signal!, awaited ?? (typeof deadline === 'number' ? 'an operation' : deadline.label)));
    };
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        cleanup();
        resolve({ timedOut: false, value });
      },
      (err) => {
        cleanup();
        reject(err);
      },
    );
  });
}
