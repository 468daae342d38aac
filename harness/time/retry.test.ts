// retry(): called until true, fn(true) once at the end, a TimeoutError naming what it waited for, errors at once.
import { describe, expect, it } from 'vitest';
import { retry } from '../index.ts';
import { TimeoutError } from '../errors/fleetlab-error.ts';

describe('retry()', () => {
  it('calls until true, told false each time before the last', async () => {
    const calls: boolean[] = [];
    await retry((last) => (calls.push(last), calls.length === 3), { interval: '100ms', timeout: '10s' });
    expect(calls).toEqual([false, false, false]);
  });

  it('tells the last call it is the last, then times out naming what it waited for', async () => {
    const calls: boolean[] = [];
    const t0 = Date.now();
    const err = await retry(async (last) => (calls.push(last), false), { interval: '200ms', timeout: '1s', what: 'the flag file' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/the flag file/);
    expect(calls.at(-1)).toBe(true);
    expect(calls.filter((c) => c)).toHaveLength(1);
    expect(calls.length).toBeGreaterThanOrEqual(4);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('ends at once when fn throws, and refuses a timeout in seconds', async () => {
    let n = 0;
    await expect(retry(() => { n++; throw new Error('boom'); }, { timeout: '10s' })).rejects.toThrow('boom');
    expect(n).toBe(1);
    await expect(retry(() => true, { timeout: 10 })).rejects.toThrow(/write '10s'/);
  });
});
