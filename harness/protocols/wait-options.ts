// The options every wait in fleetlab takes.
import type { Deadline } from '../time/deadline.ts';

/** A budget in ms (scaled by --timeout-scale), a parent deadline to stay inside, and a cancellation signal. */
export interface WaitOptions {
  timeout?: number;
  deadline?: Deadline;
  signal?: AbortSignal;
}
