// retry(): the NixOS test driver's retry() for scenarios, with fleetlab's deadlines. fn is called until it returns
// true, once a second by default; the last call before the deadline is told it is the last (fn(true)), as NTD's is,
// so it can say why it gave up; after it, a TimeoutError names what was awaited.
import { TimeoutError } from '../errors/fleetlab-error.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom, sleep } from './deadline.ts';
import { durationMs, type Duration } from './duration.ts';

export interface RetryOptions extends WaitOptions {
  /** Between calls: ms or a string with a unit; default 1 s (NTD's). */
  interval?: Duration;
  /** What the calls wait for, for the timeout's message; default "retry() to succeed". */
  what?: string;
}

/**
 * Calls `fn` until it returns true: `fn(false)` every `interval` (default 1 s), then `fn(true)` once when the next
 * call would be past the deadline (default 15 minutes, NTD's 900 s). An error `fn` throws ends it at once; false from
 * the last call is a TimeoutError (a test failure) naming `what`.
 */
export async function retry(fn: (lastTry: boolean) => boolean | Promise<boolean>, opts: RetryOptions = {}): Promise<void> {
  const what = opts.what ?? 'retry() to succeed';
  const deadline = deadlineFrom(opts, 900_000, what, 'pass { timeout } to retry()');
  const interval = opts.interval === undefined ? 1_000 : durationMs(opts.interval, 'the interval of retry()');
  for (;;) {
    const last = deadline.remaining() <= interval;
    if (await fn(last)) return;
    if (last) throw new TimeoutError('test-failure', { awaited: what, deadline });
    await sleep(interval, { deadline, signal: opts.signal, awaited: what });
  }
}
