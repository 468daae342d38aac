// scenarios/rollout.ts through the real CLI, and wave arithmetic.
import { beforeAll, describe, expect, it } from 'vitest';
import type { NixosHelpers } from './nixos.ts';
import { rollout, waveCounts, type RolloutMachine } from './rollout.ts';
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

/** Machines whose system profile is a counter: switch adds a generation, rollback goes back one; calls are recorded. */
function fleet(n: number, opts: { switchMs?: number } = {}) {
  let running = 0;
  const seen = { maxAtOnce: 0, calls: [] as string[] };
  const machines = Array.from({ length: n }, (_, i) => {
    let gen = 3;
    const m = {
      name: `node${i}`,
      notes: [] as string[],
      log: { note: (l: string) => m.notes.push(l) },
      nixos: {
        current: async () => ({ generation: gen, toplevel: `/nix/store/x-${gen}` }),
        switch: async (top: string) => {
          running++;
          seen.maxAtOnce = Math.max(seen.maxAtOnce, running);
          await new Promise((r) => setTimeout(r, opts.switchMs ?? 20));
          running--;
          seen.calls.push(`${m.name} switch ${top}`);
          gen++;
        },
        rollback: async () => {
          seen.calls.push(`${m.name} rollback`);
          gen--;
        },
      } as unknown as NixosHelpers,
    };
    return m satisfies RolloutMachine;
  });
  return { machines, seen };
}

describe('rollout', () => {
  it('a good generation: every wave in turn, at most `parallel` switches at once, each machine on a new generation with its times', async () => {
    const { machines, seen } = fleet(20);
    const steps: string[] = [];
    const r = await rollout(machines, '/nix/store/good', { waves: [1, '10%', '100%'], parallel: 4, healthCheck: async () => true, step: async (name, fn) => (steps.push(name), fn()) });
    expect(r.completed).toBe(true);
    expect(r.waves.map((w) => w.length)).toEqual([1, 1, 18]);
    expect(seen.maxAtOnce).toBe(4);
    expect(r.updated).toEqual(machines.map((m) => m.name));
    expect(r.waveMs).toHaveLength(3);
    expect(r.machines.map((m) => [m.wave, m.generationBefore, m.generationAfter, m.rolledBack])).toEqual(machines.map((_, i) => [i === 0 ? 1 : i === 1 ? 2 : 3, 3, 4, false]));
    for (const m of r.machines) expect(m.switchMs).toBeGreaterThanOrEqual(15);
    expect(steps).toContain('wave 3: node2 … node19 (18)');
  });

  it('a machine that fails its check halts the rollout at its wave, which alone is rolled back; the rest are untouched', async () => {
    const { machines, seen } = fleet(20);
    const r = await rollout(machines, '/nix/store/bad', { waves: [1, '10%', '100%'], healthCheck: async (m) => {
      if (m.name === 'node1') throw new Error('the gateway does not answer');
    } });
    expect(r.completed).toBe(false);
    expect(r.haltedAt).toEqual({ wave: 1, unhealthy: ['node1'] });
    expect(r.rolledBack).toEqual(['node1']);
    expect(seen.calls).toEqual(['node0 switch /nix/store/bad', 'node1 switch /nix/store/bad', 'node1 rollback']);
    expect(r.machines[1]).toMatchObject({ wave: 2, generationBefore: 3, generationAfter: 3, healthy: false, why: 'the gateway does not answer', rolledBack: true });
    expect(r.machines[0]).toMatchObject({ wave: 1, generationAfter: 4, healthy: true, rolledBack: false });
    expect(r.machines.slice(2).every((m) => m.wave === undefined && m.generationAfter === 3 && m.switchMs === undefined)).toBe(true);
    expect(machines[1]!.notes).toEqual(['rollout: health check failed: the gateway does not answer']);
  });

  it("a wave's gate that closes rolls back every machine of that wave (at once) and says why", async () => {
    const { machines, seen } = fleet(6);
    const r = await rollout(machines, '/nix/store/bad', { waves: [2, '100%'], healthCheck: async () => true, waveCheck: async (w) => w.length < 4 });
    expect(r.haltedAt).toEqual({ wave: 1, unhealthy: [], gate: 'its gate returned false' });
    expect(r.rolledBack).toEqual(['node2', 'node3', 'node4', 'node5']);
    expect(seen.calls.filter((c) => c.endsWith('rollback'))).toHaveLength(4);
    expect(r.machines.map((m) => m.generationAfter)).toEqual([4, 4, 3, 3, 3, 3]);
    await expect(rollout(machines, '/nix/store/x', { waves: [1], parallel: 0, healthCheck: async () => true })).rejects.toThrow('rollout: parallel must be at least 1 machine at a time, not 0');
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
