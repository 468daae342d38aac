// A fleet rollout in waves: each wave switches its machines to the new generation and checks their health; the
// first wave with an unhealthy machine is rolled back (nixos-rebuild switch --rollback on that wave's machines
// alone) and the rollout stops there. Every machine's switch, check and rollback is a step of the case.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { NixosHelpers } from './nixos.ts';
import type { Toplevel } from './generation.ts';

/** A wave's size: a machine count, or a share of the fleet ('50%'); sizes are cumulative (the fleet so far). */
export type WaveSize = number | `${number}%`;

/** What a rollout needs of a machine (a VM or a board): its name, log and NixOS helpers. */
export interface RolloutMachine {
  readonly name: string;
  readonly log: { note(line: string): void };
  readonly nixos: NixosHelpers;
}

export interface RolloutOptions<M extends RolloutMachine = RolloutMachine> {
  waves: WaveSize[];
  /** True (or nothing) when the machine is healthy on the new generation; false or a throw when not. */
  healthCheck: (m: M) => Promise<boolean | void>;
  /** The scenario's step function, so each action shows in the step tree. */
  step?: <T>(name: string, fn: () => Promise<T> | T) => Promise<T>;
}

export interface RolloutResult {
  /** True when every wave went out healthy. */
  completed: boolean;
  /** The waves as they went: machine names per wave. */
  waves: string[][];
  /** The wave that failed (index into waves) and its unhealthy machines, when the rollout halted. */
  haltedAt?: { wave: number; unhealthy: string[] };
  updated: string[];
  rolledBack: string[];
}

/** The cumulative machine counts of `waves` for a fleet of `n`. */
export function waveCounts(waves: WaveSize[], n: number): number[] {
  if (!waves.length) throw new ConfigurationError('rollout: give at least one wave (e.g. [1, "50%", "100%"])');
  const counts = waves.map((w) => {
    const c = typeof w === 'number' ? w : Math.ceil((Number(w.slice(0, -1)) / 100) * n);
    if (!Number.isFinite(c) || c < 1 || c > n) throw new ConfigurationError(`rollout: wave ${JSON.stringify(w)} is not between 1 machine and the fleet's ${n}`);
    return c;
  });
  for (let i = 1; i < counts.length; i++) if (counts[i]! < counts[i - 1]!) throw new ConfigurationError(`rollout: waves must grow (cumulative sizes): ${JSON.stringify(waves)}`);
  if (counts.at(-1) !== n) counts.push(n);
  return counts;
}

/** Rolls `toplevel` out to `machines` (in their order) in `opts.waves`. */
export async function rollout<M extends RolloutMachine>(machines: M[], toplevel: Toplevel | string | ((m: M) => Promise<Toplevel | string>), opts: RolloutOptions<M>): Promise<RolloutResult> {
  const step = opts.step ?? (<T>(_: string, fn: () => Promise<T> | T) => Promise.resolve(fn()));
  const counts = waveCounts(opts.waves, machines.length);
  const result: RolloutResult = { completed: false, waves: [], updated: [], rolledBack: [] };
  let done = 0;
  for (const [w, count] of counts.entries()) {
    const wave = machines.slice(done, count);
    if (!wave.length) continue;
    result.waves.push(wave.map((m) => m.name));
    const unhealthy: string[] = [];
    await step(`wave ${w + 1}: ${wave.map((m) => m.name).join(', ')}`, async () => {
      for (const m of wave) {
        const top = typeof toplevel === 'function' ? await toplevel(m) : toplevel;
        await step(`${m.name}: switch to ${typeof top === 'string' ? top : top.path}`, () => m.nixos.switch(top, { action: 'switch' }));
        result.updated.push(m.name);
        const healthy = await step(`${m.name}: health check`, async () => {
          try {
            return (await opts.healthCheck(m)) !== false;
          } catch (err) {
            m.log.note(`rollout: health check failed: ${String(err)}`);
            return false;
          }
        });
        if (!healthy) unhealthy.push(m.name);
      }
    });
    if (unhealthy.length) {
      result.haltedAt = { wave: w, unhealthy };
      await step(`wave ${w + 1} unhealthy (${unhealthy.join(', ')}): rolling it back, rollout halted`, async () => {
        for (const m of wave) {
          await m.nixos.rollback({ action: 'switch' });
          result.rolledBack.push(m.name);
        }
      });
      return result;
    }
    done = count;
  }
  result.completed = true;
  return result;
}
