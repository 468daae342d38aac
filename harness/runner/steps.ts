// A try's steps: a tree, nested through async context (so parallel steps nest correctly), each timed, with its own
// deadline inside its parent's and the scenario's, and reported as it begins and ends.
import { durationMs, type Duration } from '../time/duration.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import { TimeoutError } from '../errors/fleetlab-error.ts';
import type { ReporterMux } from '../report/reporter.ts';
import { type Deadline, now, raceDeadline, withDeadline } from '../time/deadline.ts';
import { errorInfo } from './error-info.ts';
import type { StepResult } from './results.ts';

/** Thrown by ctx.skip(): ends the scenario as skipped, with its reason. */
export class SkipSignal extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`skipped: ${reason}`);
    this.reason = reason;
  }
}

/** What steps of one try report to and stay within. */
export interface StepContext {
  caseId: string;
  file: string;
  /** The scenario's deadline: the outermost budget. */
  deadline: Deadline;
  /** Aborted when the case ends or the run is interrupted. */
  signal: AbortSignal;
  reporters: ReporterMux;
  /** The top level of the step tree (the try's result's steps). */
  steps: StepResult[];
  /** The console lines a step timeout quotes. */
  lastLines(): string[] | undefined;
}

/** `work`'s value, or a test-failure TimeoutError naming `awaited` once `budget` expires (raceDeadline handles a late rejection). */
export async function within<T>(work: Promise<T>, budget: Deadline, awaited: string, ctx: Pick<StepContext, 'signal' | 'lastLines'>): Promise<T> {
  const r = await raceDeadline(work, budget, ctx.signal);
  if (r.timedOut) throw new TimeoutError('test-failure', { awaited, deadline: budget, lastLines: ctx.lastLines() });
  return r.value;
}

/** The step() of a scenario context. */
export function stepRunner(ctx: StepContext): <T>(name: string, fn: () => Promise<T> | T, opts?: { timeout?: Duration }) => Promise<T> {
  const store = new AsyncLocalStorage<{ step: StepResult; path: string[]; deadline: Deadline }>();
  return async <T>(name: string, fn: () => Promise<T> | T, sopts?: { timeout?: Duration }): Promise<T> => {
    const parent = store.getStore();
    const s: StepResult = { name, startedAt: Date.now(), durationMs: 0, status: 'running', steps: [] };
    (parent ? parent.step.steps : ctx.steps).push(s);
    const path = [...(parent?.path ?? []), name];
    const parentDeadline = parent?.deadline ?? ctx.deadline;
    const stepDeadline = sopts?.timeout !== undefined ? parentDeadline.child(durationMs(sopts.timeout, `the timeout of step "${path.join(' › ')}"`), `step "${path.join(' › ')}"`, 'pass { timeout } to step()') : parentDeadline;
    ctx.reporters.emitSync('onStepBegin', { id: ctx.caseId, path });
    const t0 = now();
    try {
      const body = store.run({ step: s, path, deadline: stepDeadline }, () => withDeadline(stepDeadline, () => Promise.resolve().then(fn)));
      const value = await within(body, stepDeadline, `step "${path.join(' › ')}" to finish`, ctx);
      s.status = 'passed';
      return value;
    } catch (err) {
      s.status = 'failed';
      if (!(err instanceof SkipSignal)) s.error = errorInfo(err, ctx.file);
      throw err;
    } finally {
      s.durationMs = now() - t0;
      ctx.reporters.emitSync('onStepEnd', { id: ctx.caseId, path, step: s });
    }
  };
}
