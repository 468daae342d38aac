// The run history's reporter (fleetlab run; --history none leaves it out). At the run's start it reads the runs before
// it; as each case ends it classifies a failure against them (new, still failing, flaky, known: docs/gating.md) and
// marks the case's result, so the console, JUnit and report.html show it (it is the first reporter, and marks the
// result before any other sees it); at the end it records the run. A history that cannot be read or written is said on
// stderr and changes neither the run's outcome nor its reports. Every case also gets its trend: its status and
// duration in the runs before (report.html draws them as a sparkline).
import { gitCommit } from '../report/git-commit.ts';
import type { Reporter, RunInfo, RunSummary } from '../report/reporter.ts';
import type { CaseResult } from '../runner/results.ts';
import { caseRecord, classify, type HistoryStore, type RunRecord, runRecord } from './history.ts';
import type { KnownFailure } from './known-failures.ts';
import { openHistory } from './open-history.ts';

/** Earlier runs a case is compared with, as the gate's default window. */
const WINDOW = 20;
/** Earlier runs a case's sparkline shows. */
const TREND = 10;

export class HistoryReporter implements Reporter {
  private run: RunInfo | undefined;
  private store: HistoryStore | undefined;
  private earlier: RunRecord[] = [];
  private readonly location: string;
  private readonly known: KnownFailure[];

  constructor(location: string, known: KnownFailure[] = []) {
    this.location = location;
    this.known = known;
  }

  async onRunBegin(run: RunInfo): Promise<void> {
    this.run = run;
    try {
      this.store = await openHistory(this.location);
      this.earlier = (await this.store?.recentRuns(WINDOW)) ?? [];
    } catch (err) {
      this.warn(`could not be read`, err);
    }
  }

  /** Synchronous: the result is marked before the other reporters' onCaseEnd run. */
  onCaseEnd(result: CaseResult): void {
    if (!this.run || !this.store) return;
    const id = result.repeat?.caseId ?? result.id;
    const trend = this.earlier.flatMap((r) => r.cases.filter((c) => c.caseId === id).map((c) => ({ runId: r.runId, status: c.status, durationMs: c.durationMs, properties: c.properties })));
    if (trend.length) result.trend = trend.slice(0, TREND).reverse();
    const commit = gitCommit();
    const [c] = classify({ runId: this.run.runId, startedAt: this.run.startedAt, commit, durationMs: 0, exitCode: 0, outputDir: '', inputs: this.run.inputs ?? {}, cases: [caseRecord(result)] }, this.earlier, this.known);
    if (c) result.history = { class: c.class, why: c.why, bug: c.known?.bug };
  }

  async onRunEnd(summary: RunSummary): Promise<void> {
    if (!this.run || !this.store) return;
    try {
      await this.store.record(runRecord(this.run, summary, gitCommit()));
    } catch (err) {
      this.warn('was not written', err);
    } finally {
      await this.store.close().catch(() => undefined);
      this.store = undefined;
    }
  }

  private warn(what: string, err: unknown): void {
    console.error(`fleetlab: the run history ${this.location} ${what}: ${(err as Error).message}`);
  }
}
