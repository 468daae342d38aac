// The options every wait in fleetlab takes.
import type { Deadline } from '../time/deadline.ts';
import type { Duration } from '../time/duration.ts';

/**
 * A budget (scaled by --timeout-scale), a parent deadline to stay inside, and a cancellation signal. The budget is
 * milliseconds as a number (at least 100: `{ timeout: 10 }` is refused as seconds written without a unit) or a string
 * with a unit: `'10s'`, `'2m'`, `'500ms'`.
 */
export interface WaitOptions {
  timeout?: Duration;
  deadline?: Deadline;
  signal?: AbortSignal;
}
