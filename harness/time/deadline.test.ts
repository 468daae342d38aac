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

  it('suspend() stops the clock of a deadline and its parents: a race on it outlasts its budget by the pause', async () => {
    const scenario = Deadline.after(150, 'scenario');
    const step = scenario.child(60_000, 'step');
    const t0 = performance.now();
    const race = raceDeadline(new Promise(() => undefined), step);
    const resume = step.suspend();
    await new Promise((r) => setTimeout(r, 300));
    // Paused for twice the budget: still time left, and the race still waits.
    expect(scenario.expired()).toBe(false);
    expect(step.remaining()).toBeGreaterThan(100);
    resume();
    expect(await race).toEqual({ timedOut: true });
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(440);
    expect(took).toBeLessThan(2000);
    // Resumed, the clock runs again.
    expect(scenario.expired()).toBe(true);
  });

  it('formats durations for people', () => {
    expect(formatMs(850)).toBe('850 ms');
    expect(formatMs(2000)).toBe('2.0 s');
    expect(formatMs(45_000)).toBe('45 s');
    expect(formatMs(245_000)).toBe('4 min 5 s');
  });
});
