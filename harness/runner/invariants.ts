// Invariants: checks that hold for the whole case, as the NixOS test driver's polling conditions do ("every node
// reaches the gateway", "no kernel oops on any node"). ctx.invariant(name, check, { every }) runs the check now and
// then every `every` (one at a time) until the case ends; the first check that throws or returns false ends the
// case at once as a test failure naming the invariant, when (time of day and seconds into the case), which check it
// was and what it said (a CommandError names the machine and the command).
import { TestFailure } from '../errors/fleetlab-error.ts';
import { type Duration, durationMs } from '../time/duration.ts';

/** A check: holds when it returns (anything but false) without throwing. */
export type InvariantCheck = () => unknown | Promise<unknown>;

export interface InvariantOptions {
  /** How often it is checked ('5s', '200ms', or ms); default 5 s, at least 50 ms. */
  every?: Duration;
  /** How long one check may take before it counts as broken; default 60 s or ten periods, whichever is longer. */
  timeout?: Duration;
}

/** An invariant once declared: stop() ends its checks (the case's end stops them all). */
export interface InvariantHandle {
  readonly name: string;
  /** Checks made so far, all of which held. */
  readonly checks: number;
  stop(): void;
}

/** The invariants of one case. */
export class Invariants {
  private readonly all: Array<InvariantHandle & { stopped: boolean }> = [];
  private readonly startedAt = performance.now();
  private readonly opts: { fail: (err: TestFailure) => void; signal: AbortSignal; output: (line: string) => void };

  /** `fail` ends the case with the violation; `signal` is the case's (its end stops every check). */
  constructor(opts: { fail: (err: TestFailure) => void; signal: AbortSignal; output: (line: string) => void }) {
    this.opts = opts;
  }

  add(name: string, check: InvariantCheck, o: InvariantOptions = {}): InvariantHandle {
    if (typeof name !== 'string' || !name.trim()) throw new TypeError('ctx.invariant(name, check): give the invariant a name, e.g. "every node reaches the gateway"');
    if (typeof check !== 'function') throw new TypeError(`ctx.invariant(${JSON.stringify(name)}, check): check must be a function`);
    const every = durationMs(o.every ?? 5000, `the period of invariant "${name}"`);
    if (every < 50) throw new TypeError(`ctx.invariant(${JSON.stringify(name)}): every ${every} ms is too often; give at least 50 ms`);
    const timeout = o.timeout !== undefined ? durationMs(o.timeout, `the timeout of invariant "${name}"`) : Math.max(60_000, every * 10);
    const h = { name, checks: 0, stopped: false, stop: () => void (h.stopped = true) };
    this.all.push(h);
    void this.loop(h, check, every, timeout);
    return h;
  }

  /** The case ended: no more checks; one line per invariant that held, with its count. */
  finish(): void {
    for (const h of this.all) {
      if (!h.stopped) this.opts.output(`invariant "${h.name}": held through ${h.checks} check(s)`);
      h.stopped = true;
    }
  }

  private async loop(h: { name: string; checks: number; stopped: boolean }, check: InvariantCheck, every: number, timeout: number): Promise<void> {
    const { signal } = this.opts;
    while (!h.stopped && !signal.aborted) {
      const n = h.checks + 1;
      let why: string | undefined;
      let cause: unknown;
      let timer: NodeJS.Timeout | undefined;
      try {
        const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the check did not end within ${timeout} ms`)), timeout)));
        if ((await Promise.race([Promise.resolve().then(check), late])) === false) why = 'the check returned false';
      } catch (err) {
        cause = err;
        why = (err as Error)?.message ?? String(err);
      } finally {
        clearTimeout(timer);
      }
      if (h.stopped || signal.aborted) return;
      if (why !== undefined) {
        h.stopped = true;
        const secs = ((performance.now() - this.startedAt) / 1000).toFixed(1);
        this.opts.fail(new TestFailure(`invariant "${h.name}" was violated at ${new Date().toISOString()} (${secs} s into the case), at its check #${n}: ${why}`, { cause, details: { invariant: h.name, check: n } }));
        return;
      }
      h.checks = n;
      await new Promise<void>((r) => {
        const wake = () => {
          clearTimeout(t);
          signal.removeEventListener('abort', wake);
          r();
        };
        const t = setTimeout(wake, every);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }
}
