// Durations as users write them: a number is milliseconds, a string carries its unit ('500ms', '10s', '2m', '1h').
import { ConfigurationError } from '../errors/fleetlab-error.ts';

/** A duration: milliseconds as a number, or a string with a unit: '500ms', '10s', '1.5s', '2m' (or '2min'), '1h'. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'min' | 'h'}`;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** Below this many ms a number given as a timeout is taken for seconds written without a unit, and refused. */
export const SMALLEST_TIMEOUT_MS = 100;

/**
 * A duration in ms; `what` names the option in the error ("the timeout of command on vm: ls"). A number under 100 is
 * refused: the NixOS test driver's timeouts are seconds, so `{ timeout: 10 }` almost always meant '10s' (it would be
 * 10 ms here). A string with a unit may be as short as it likes.
 */
export function durationMs(d: Duration, what: string): number {
  if (typeof d === 'number') {
    if (!Number.isFinite(d) || d < 0) throw new ConfigurationError(`${what}: ${d} is no duration; give milliseconds (10_000) or a string with a unit ('10s')`, { details: { value: d } });
    if (d < SMALLEST_TIMEOUT_MS) throw new ConfigurationError(`${what}: ${d} is ${d} ms (fleetlab's timeouts are milliseconds, not seconds as in the NixOS test driver); write '${d}s' for ${d} seconds, or '${d}ms' if you mean milliseconds`, { details: { value: d } });
    return d;
  }
  const m = typeof d === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)\s*$/.exec(d) : null;
  if (!m) throw new ConfigurationError(`${what}: ${JSON.stringify(d)} is no duration; write a number of milliseconds or a number with a unit: '500ms', '10s', '2m', '1h'`, { details: { value: d } });
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
