// Records each run into the run history at its end (fleetlab run; --history none leaves it out). A history that
// cannot be written is said on stderr and does not change the run's outcome: its reports are already written.
import { gitCommit } from '../report/git-commit.ts';
import type { Reporter, RunInfo, RunSummary } from '../report/reporter.ts';
import { runRecord } from './history.ts';
import { openHistory } from './open-history.ts';

export class HistoryReporter implements Reporter {
  private run: RunInfo | undefined;
  private readonly location: string;

  constructor(location: string) {
    this.location = location;
  }

  onRunBegin(run: RunInfo): void {
    this.run = run;
  }

  async onRunEnd(summary: RunSummary): Promise<void> {
    if (!this.run) return;
    try {
      const store = await openHistory(this.location);
      if (!store) return;
      try {
        await store.record(runRecord(this.run, summary, gitCommit()));
      } finally {
        await store.close();
      }
    } catch (err) {
      console.error(`fleetlab: the run was not recorded in the history ${this.location}: ${(err as Error).message}`);
    }
  }
}
