// scenarios/rollout.ts through the real CLI, and wave arithmetic.
import { beforeAll, describe, expect, it } from 'vitest';
import { waveCounts } from './rollout.ts';
import { runScenario } from './run-scenario.ts';

describe('waveCounts', () => {
  it('turns sizes and shares into cumulative counts, ending with the whole fleet', () => {
    expect(waveCounts([1, '50%', '100%'], 4)).toEqual([1, 2, 4]);
    expect(waveCounts([1, '25%'], 10)).toEqual([1, 3, 10]);
  });
  it('refuses waves that shrink, are empty or exceed the fleet, naming them', () => {
    expect(() => waveCounts([], 4)).toThrow(/at least one wave/);
    expect(() => waveCounts([3, 1], 4)).toThrow(/waves must grow/);
    expect(() => waveCounts([5], 4)).toThrow(/wave 5 is not between 1 machine and the fleet's 4/);
    expect(() => waveCounts(['0%'], 4)).toThrow(/wave "0%"/);
  });
});

describe('rollout scenario', () => {
  let run: Awaited<ReturnType<typeof runScenario>>;
  beforeAll(async () => {
    run = await runScenario('scenarios/rollout.ts', [], 600_000);
  }, 620_000);

  it('passes: a good generation reaches all four, a bad one halts after the canary and is rolled back there alone', () => {
    expect(run.exitCode, run.output.slice(-4000)).toBe(0);
    expect(run.cases[0]!.properties['rollout.halted.wave']).toBe('1');
    expect(run.cases[0]!.out).toMatch(/wave 1 unhealthy \(canary\): rolling it back, rollout halted/);
  });

  it('starts warm: the canary boots and saves, b, c and d restore its snapshot', () => {
    const p = run.cases[0]!.properties;
    expect(['canary', 'b', 'c', 'd'].map((m) => p[`machine.${m}.start`])).toEqual(['cold', 'warm', 'warm', 'warm']);
  });
});
