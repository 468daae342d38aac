// Durations as users write them: milliseconds as numbers, strings with units, and a number under 100 refused as the
// seconds a NixOS test driver user meant; every wait's { timeout } goes through them (deadlineFrom).
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { deadlineFrom } from './deadline.ts';
import { durationMs } from './duration.ts';

describe('durations', () => {
  it("'10s' and 10_000 are the same budget; units ms, s, m, min and h", () => {
    expect(durationMs('10s', 'x')).toBe(10_000);
    expect(durationMs(10_000, 'x')).toBe(10_000);
    expect(durationMs('500ms', 'x')).toBe(500);
    expect(durationMs('1.5s', 'x')).toBe(1500);
    expect(durationMs('2m', 'x')).toBe(120_000);
    expect(durationMs('2min', 'x')).toBe(120_000);
    expect(durationMs('1h', 'x')).toBe(3_600_000);
    expect(durationMs('5ms', 'x')).toBe(5);
    expect(deadlineFrom({ timeout: '10s' }, 1, 'a wait').budgetMs).toBe(deadlineFrom({ timeout: 10_000 }, 1, 'a wait').budgetMs);
  });

  it('{ timeout: 10 } is refused, naming the wait and suggesting 10s', () => {
    const err = (() => {
      try {
        deadlineFrom({ timeout: 10 }, 60_000, 'command on vm: ls');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).toBe("the timeout of command on vm: ls: 10 is 10 ms (fleetlab's timeouts are milliseconds, not seconds as in the NixOS test driver); write '10s' for 10 seconds, or '10ms' if you mean milliseconds");
  });

  it('a string without a unit, a negative number or nonsense names what to write', () => {
    for (const bad of ['10', '10 seconds', 's', '-5s', -1, Number.NaN] as const) {
      expect(() => durationMs(bad as never, 'the timeout of x')).toThrow(ConfigurationError);
    }
    expect(() => durationMs('10' as never, 'the timeout of x')).toThrow(/^the timeout of x: "10" is no duration; write a number of milliseconds or a number with a unit: '500ms', '10s', '2m', '1h'$/);
  });
});
