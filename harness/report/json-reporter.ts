// report.json: the run's events and results, for tools and the HTML report.
import { passRates, type CaseResult } from '../runner/results.ts';
import { identityIds, systemContents } from '../runner/system-identity.ts';
import { AtomicFile } from './atomic-file.ts';
import type { Reporter, RunInfo, RunSummary } from './reporter.ts';

type Event = { t: number; type: string } & Record<string, unknown>;

/** Writes report.json after every case and at the end of the run. */
export class JsonReporter implements Reporter {
  private readonly file: AtomicFile;
  private run: RunInfo | undefined;
  private readonly events: Event[] = [];
  private readonly results: CaseResult[] = [];
  private summary: Omit<RunSummary, 'results'> | undefined;

  constructor(path: string) {
    this.file = new AtomicFile(path);
  }

  private event(type: string, data: Record<string, unknown>): void {
    this.events.push({ t: Date.now(), type, ...data });
  }

  onRunBegin(run: RunInfo): void {
    this.run = run;
    this.event('run-begin', { runId: run.runId, cases: run.cases.length, workers: run.workers });
  }
  onCaseBegin(c: { id: string; attempt: number }): void {
    this.event('case-begin', c);
  }
  onMachineState(c: { id: string; machine: string; state: string }): void {
    this.event('machine-state', c);
  }
  onStepEnd(c: { id: string; path: string[]; step: { durationMs: number; status: string } }): void {
    this.event('step-end', { id: c.id, path: c.path, durationMs: c.step.durationMs, status: c.step.status });
  }
  async onCaseEnd(result: CaseResult): Promise<void> {
    this.results.push(result);
    this.event('case-end', { id: result.id, status: result.status, durationMs: result.durationMs });
    await this.write();
  }
  async onRunEnd(summary: RunSummary): Promise<void> {
    this.summary = { durationMs: summary.durationMs, exitCode: summary.exitCode, interrupted: summary.interrupted };
    this.results.splice(0, this.results.length, ...summary.results);
    this.event('run-end', this.summary);
    await this.write();
  }

  private write(): Promise<void> {
    // The contents of the systems the machines ran (closures, image packages), once each: report merge records them.
    const systems = systemContents(identityIds(this.results.flatMap((r) => r.attempts.flatMap((a) => a.machines.map((m) => m.system)))));
    return this.file.write(() => JSON.stringify({ run: this.run, summary: this.summary, results: this.results, passRates: passRates(this.results), systems, events: this.events }, null, 2) + '\n');
  }
}
