import { describe, expect, it } from 'vitest';
import { Deadline, formatMs, raceDeadline, setTimeoutScale } from './deadline.ts';

describe('Deadline', () => {
  it('an inner deadline never outlives its parent, and the binding one is named', () => {
    const parent = Deadline.after(1000, 'scenario smoke');
    const child = parent.child(60_000, 'wait for login');
    expect(child.remaining()).toBeLessThanOrEqual(1000);
    expect(child.binding()).toBe(parent);
    expect(child.describe()).toBe('scenario smoke (1.0 s)');
    const short = parent.child(10, 'quick');
    expect(short.binding()).toBe(short);
  });

  it('the timeout scale multiplies budgets', () => {
    setTimeoutScale(3);
    try {
      expect(Deadline.after(1000, 'x').budgetMs).toBe(3000);
      expect(Deadline.after(1000, 'x', { unscaled: true }).budgetMs).toBe(1000);
    } finally {
      setTimeoutScale(1);
    }
    expect(() => setTimeoutScale(0)).toThrow(/positive/);
  });

  it('raceDeadline reports a timeout without throwing and keeps no timer', async () => {
    const r = await raceDeadline(new Promise(() => undefined), Deadline.after(20, 'never'));
    expect(r).toEqual({ timedOut: true });
    expect(await raceDeadline(Promise.resolve(7), 1000)).toEqual({ timedOut: false, value: 7 });
  });

  it('formats durations for people', () => {
    expect(formatMs(850)).toBe('850 ms');
    expect(formatMs(2000)).toBe('2.0 s');
    expect(formatMs(45_000)).toBe('45 s');
    expect(formatMs(245_000)).toBe('4 min 5 s');
  });
});
