// A fleet rollout in waves: each wave switches its machines to the new generation (a few at a time, or all at once)
// and checks each machine's health, then the wave's gate; the first wave with an unhealthy machine or a closed gate
// is rolled back (nixos-rebuild switch --rollback on that wave's machines alone) and the rollout stops there. Every
// machine's switch, check and rollback is a step of the case; the result has each machine's generations and times.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { inSlots } from '../time/in-slots.ts';
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
  /**
   * The wave's gate, once each of its machines switched and passed its check: true (or nothing) lets the rollout go
   * on; false or a throw halts it and rolls the wave back (e.g. "the mesh converged again", "the gateway answers").
   */
  waveCheck?: (wave: M[]) => Promise<boolean | void>;
  /** How many machines of a wave switch (and roll back) at once. Default: the whole wave. */
  parallel?: number;
  /** The scenario's step function, so each action shows in the step tree. */
  step?: <T>(name: string, fn: () => Promise<T> | T) => Promise<T>;
}

/** One machine in a rollout: its wave, its system profile's generation before and at the end, and how long it took. */
export interface RolloutMachineReport {
  name: string;
  /** Its wave (1-based), or undefined when the rollout halted before it. */
  wave?: number;
  /** The generation of its system profile before the rollout and when it ended (rolled back: the one before). */
  generationBefore: number;
  generationAfter: number;
  /** The switch, its health check and (when its wave failed) its rollback, in ms. */
  switchMs?: number;
  checkMs?: number;
  rollbackMs?: number;
  healthy?: boolean;
  /** What its health check said when it failed. */
  why?: string;
  rolledBack: boolean;
}

export interface RolloutResult {
  /** True when every wave went out healthy. */
  completed: boolean;
  /** The waves as they went: machine names per wave. */
  waves: string[][];
  /** The wave that failed (index into waves), its unhealthy machines, and why the gate closed (when it did). */
  haltedAt?: { wave: number; unhealthy: string[]; gate?: string };
  /** Machines switched, and those rolled back, in fleet order. */
  updated: string[];
  rolledBack: string[];
  /** Every machine of the fleet, in its order: touched or not. */
  machines: RolloutMachineReport[];
  /** How long each wave took (switches, checks, gate, and its rollback), in ms. */
  waveMs: number[];
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
  const parallel = opts.parallel ?? Infinity;
  if (!(parallel >= 1)) throw new ConfigurationError(`rollout: parallel must be at least 1 machine at a time, not ${opts.parallel}`);
  const reports = await step(`rollout: the generations of ${machines.length} machines`, () => Promise.all(machines.map(async (m): Promise<RolloutMachineReport> => {
    const g = (await m.nixos.current()).generation;
    return { name: m.name, generationBefore: g, generationAfter: g, rolledBack: false };
  })));
  const result: RolloutResult = { completed: false, waves: [], updated: [], rolledBack: [], machines: reports, waveMs: [] };
  const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const t = performance.now();
    const v = await fn();
    return [v, Math.round(performance.now() - t)];
  };
  let done = 0;
  for (const count of counts) {
    const wave = machines.slice(done, count);
    const first = done;
    done = count;
    if (!wave.length) continue;
    const w = result.waves.length;
    const t0 = performance.now();
    result.waves.push(wave.map((m) => m.name));
    await step(`wave ${w + 1}: ${names(wave)}`, () => inSlots(wave, parallel, async (m) => {
      const r = reports[first + wave.indexOf(m)]!;
      r.wave = w + 1;
      const top = typeof toplevel === 'function' ? await toplevel(m) : toplevel;
      [, r.switchMs] = await timed(() => step(`${m.name}: switch to ${typeof top === 'string' ? top : top.path}`, () => m.nixos.switch(top, { action: 'switch' })));
      r.generationAfter = (await m.nixos.current()).generation;
      [r.healthy, r.checkMs] = await timed(() => step(`${m.name}: health check`, async () => {
        try {
          if ((await opts.healthCheck(m)) !== false) return true;
          r.why = 'its health check returned false';
        } catch (err) {
          r.why = err instanceof Error ? err.message : String(err);
          m.log.note(`rollout: health check failed: ${r.why}`);
        }
        return false;
      }));
    }));
    const waveReports = reports.slice(first, count);
    result.updated.push(...wave.map((m) => m.name));
    const unhealthy = waveReports.filter((r) => !r.healthy).map((r) => r.name);
    let gate: string | undefined;
    if (!unhealthy.length && opts.waveCheck) {
      gate = await step(`wave ${w + 1}: gate`, async () => {
        try {
          return (await opts.waveCheck!(wave)) === false ? 'its gate returned false' : undefined;
        } catch (err) {
          return err instanceof Error ? err.message : String(err);
        }
      });
    }
    if (unhealthy.length || gate !== undefined) {
      result.haltedAt = { wave: w, unhealthy, ...(gate !== undefined ? { gate } : {}) };
      await step(`wave ${w + 1} ${unhealthy.length ? `unhealthy (${unhealthy.join(', ')})` : `failed its gate (${gate})`}: rolling it back, rollout halted`, () => inSlots(wave, parallel, async (m) => {
        const r = reports[first + wave.indexOf(m)]!;
        [, r.rollbackMs] = await timed(() => m.nixos.rollback({ action: 'switch' }));
        r.generationAfter = (await m.nixos.current()).generation;
        r.rolledBack = true;
      }));
      result.rolledBack.push(...wave.map((m) => m.name));
      result.waveMs.push(Math.round(performance.now() - t0));
      return result;
    }
    result.waveMs.push(Math.round(performance.now() - t0));
  }
  result.completed = true;
  return result;
}

/** "node0, node1, node2" — or, past 8 machines, "node3 … node63 (61)". */
function names(ms: RolloutMachine[]): string {
  return ms.length <= 8 ? ms.map((m) => m.name).join(', ') : `${ms[0]!.name} … ${ms.at(-1)!.name} (${ms.length})`;
}
