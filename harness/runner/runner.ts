// Runs the planned cases on a pool of workers, retries infrastructure errors, and tells the reporters.
import type { BoardProvider } from './boards.ts';
import { cpus } from 'node:os';
import type { Pauses } from '../debug/pauses.ts';
import type { ReporterMux, RunSummary } from '../report/reporter.ts';
import { now } from '../time/deadline.ts';
import { availableMemoryMiB, caseMemoryNeed, HOST_RESERVE_MIB } from './memory-budget.ts';
import { type PlannedCase, startsWarm } from './plan.ts';
import type { AttemptResult, CaseResult } from './results.ts';
import { runCase } from './run-case.ts';
import { isFleet, startSlots } from './case-machines.ts';
import { SnapshotStore } from '../qemu/warm-start.ts';
import { QemuProvider } from '../qemu/qemu-provider.ts';

/** Options of a run, normalised by the CLI. */
export interface RunOptions {
  runId: string;
  outputDir: string;
  workers: number;
  retries: number;
  /** ctx.pause, --debug and --pause-on-failure (none: ctx.pause() does not pause). */
  pauses?: Pauses;
  accel?: 'auto' | 'kvm' | 'tcg' | 'hvf';
  signal: AbortSignal;
  /** Warm starts for every case (--warm); a scenario's snapshot option overrides it. */
  warm?: boolean;
  /** Setup checkpoints saved and restored (default); false: every case runs its setup's steps (--no-checkpoints). */
  checkpoints?: boolean;
  /** Keep the run's snapshots and checkpoints in this directory for later runs (--keep-snapshots). */
  keepSnapshots?: string;
  /** The lab, for cases on boards (--lab). */
  boards?: BoardProvider;
  /** Read each machine's system at each case's end, for the run history. */
  recordSystems?: boolean;
  /** The run's inputs (--input NAME=VALUE): ctx.inputs. */
  inputs?: Record<string, string>;
  /** The options it runs with (command line over fleetlab.config.ts), for report.json. */
  options?: Record<string, unknown>;
}

/** Exit codes of a run. */
export const EXIT_CODES = { passed: 0, testFailure: 1, configuration: 2, infrastructure: 3, interrupted: 130 } as const;

/** Whether case `c` takes the host alone: a fleet, more VMs than it starts at once (case-machines.ts's start slots). */
export function runsAlone(c: PlannedCase): boolean {
  return isFleet(Object.keys(c.scenario.machines).length);
}

/** Workers that fit this host: no more than its cores, and no more cases side by side than its memory holds (memory-budget.ts). */
export function defaultWorkers(cases: PlannedCase[], warm?: boolean): number {
  const perCaseMiB = Math.max(512, ...cases.map((c) => caseMemoryNeed(c, startsWarm(c, warm)).mib));
  const memMiB = availableMemoryMiB() - HOST_RESERVE_MIB;
  return Math.max(1, Math.min(cpus().length, Math.floor(memMiB / perCaseMiB), cases.length || 1));
}

/** Runs every case; resolves with the results. */
export async function runPlan(cases: PlannedCase[], opts: RunOptions, reporters: ReporterMux): Promise<RunSummary> {
  const t0 = now();
  await reporters.emit('onRunBegin', {
    runId: opts.runId,
    outputDir: opts.outputDir,
    cases: cases.map((c) => ({ id: c.id, file: c.file, scenario: c.scenario.name, variant: c.variant, ...(c.repeat ? { repeat: c.repeat } : {}), ...(c.scenario.fleets ? { fleets: c.scenario.fleets } : {}) })),
    workers: opts.workers,
    startedAt: new Date().toISOString(),
    inputs: opts.inputs ?? {},
    ...(opts.options ? { options: opts.options } : {}),
  });
  const results: CaseResult[] = [];
  let next = 0;
  // Snapshots for warm starts: one store per run, shared by its workers, removed at its end unless kept.
  const warmCase = (c: PlannedCase) => startsWarm(c, opts.warm);
  // Setup checkpoints live in the same store.
  const checkpointCase = (c: PlannedCase) => opts.checkpoints !== false && !!c.scenario.setup;
  const snapshots = cases.some((c) => warmCase(c) || checkpointCase(c)) ? await SnapshotStore.open(opts.keepSnapshots) : undefined;
  const order = new Map(cases.map((c, i) => [c.id, i]));
  // The run's VMs come from one QEMU provider, its boards from the lab's.
  const qemu = new QemuProvider({ accel: opts.accel });

  const runOne = async (c: PlannedCase): Promise<CaseResult> => {
    const caseStart = now();
    const attempts: AttemptResult[] = [];
    for (let attempt = 1; ; attempt++) {
      await reporters.emit('onCaseBegin', { id: c.id, attempt });
      const result = await runCase(c, { attempt, outputDir: opts.outputDir, reporters, signal: opts.signal, pauses: opts.pauses, qemu, snapshots: warmCase(c) ? snapshots : undefined, checkpoints: checkpointCase(c) ? snapshots : undefined, warmTurn: order.get(c.id), boards: opts.boards, recordSystems: opts.recordSystems, inputs: opts.inputs });
      attempts.push(result);
      const willRetry = result.status === 'error' && result.error?.kind === 'infrastructure' && attempt <= opts.retries && !opts.signal.aborted;
      await reporters.emit('onAttemptEnd', { id: c.id, attempt: result, willRetry });
      if (!willRetry) break;
    }
    const last = attempts[attempts.length - 1]!;
    const status = last.status === 'passed' && attempts.length > 1 ? 'flaky' : last.status;
    return { id: c.id, file: c.file, scenario: c.scenario.name, variant: c.variant, tags: c.scenario.tags ?? [], status, durationMs: now() - caseStart, attempts, ...(c.repeat ? { repeat: c.repeat } : {}) };
  };

  // A fleet (more VMs than a case starts at once) takes the host alone: the cases beside it would starve it and it them.
  // Once one is waiting no other case starts, so it is not passed over; cases still start in plan order.
  let running = 0;
  let alone = false;
  let aloneWaiting = 0;
  const wakes: Array<() => void> = [];
  const admit = async (c: PlannedCase) => {
    const big = runsAlone(c);
    if (big) aloneWaiting++;
    while (big ? running > 0 : alone || aloneWaiting > 0) await new Promise<void>((r) => wakes.push(r));
    if (big) {
      aloneWaiting--;
      alone = true;
    }
    running++;
    return big;
  };
  const leave = () => {
    running--;
    alone = false;
    for (const wake of wakes.splice(0)) wake();
  };

  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      // Warm starts decide in plan order (SnapshotStore.inTurn); a case that decides nothing gives its turn up.
      if (!warmCase(c) || opts.signal.aborted) snapshots?.release(order.get(c.id)!);
      let r: CaseResult;
      if (opts.signal.aborted) {
        const skipped: AttemptResult = { attempt: 1, status: 'skipped', skipReason: 'not run: the run was interrupted', startedAt: new Date().toISOString(), durationMs: 0, steps: [], machines: [], artifacts: [], output: [] };
        r = { id: c.id, file: c.file, scenario: c.scenario.name, variant: c.variant, tags: c.scenario.tags ?? [], status: 'skipped', durationMs: 0, attempts: [skipped], ...(c.repeat ? { repeat: c.repeat } : {}) };
      } else {
        const big = await admit(c);
        try {
          r = await runOne(c);
          if (big) r.attempts[0]!.output.unshift(`ran alone: ${Object.keys(c.scenario.machines).length} machines, more than the ${startSlots()} a case starts at once (FLEETLAB_START_SLOTS)`);
        } finally {
          leave();
          snapshots?.release(order.get(c.id)!);
        }
      }
      results.push(r);
      await reporters.emit('onCaseEnd', r);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.workers, cases.length)) }, worker));
  } finally {
    await snapshots?.close();
  }

  // Report in plan order, whatever order workers finished in.
  results.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  const summary: RunSummary = { results, durationMs: now() - t0, exitCode: exitCodeOf(results, opts.signal.aborted), interrupted: opts.signal.aborted };
  return summary;
}

/**
 * 0 all passed (flaky included), 1 any test failure, 2 a configuration error (a profile QEMU refused, a guest the
 * shell channel cannot run in) and no failure, 3 infrastructure errors only, 130 interrupted.
 */
export function exitCodeOf(results: CaseResult[], interrupted: boolean): number {
  if (interrupted) return EXIT_CODES.interrupted;
  if (results.some((r) => r.status === 'failed')) return EXIT_CODES.testFailure;
  if (results.some((r) => r.status === 'error' && r.attempts[r.attempts.length - 1]?.error?.kind === 'configuration')) return EXIT_CODES.configuration;
  if (results.some((r) => r.status === 'error' || r.status === 'interrupted')) return EXIT_CODES.infrastructure;
  return EXIT_CODES.passed;
}
