// Run history in SQLite (Node's built-in node:sqlite, no native module): the default, reports/history.sqlite. WAL,
// a 10 s busy timeout: runs that end at once on one host wait for each other's write.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { HistoryStore, RunRecord } from './history.ts';
import { CASE_COLUMNS, caseFromRow, caseRow, type CaseRow, type RunRow, runFromRow, tablesDdl } from './history-rows.ts';

export class SqliteHistory implements HistoryStore {
  readonly where: string;
  private readonly db: DatabaseSync;

  constructor(path: string) {
    this.where = path;
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.db = new DatabaseSync(path, { timeout: 10_000 });
      this.db.exec(`PRAGMA journal_mode = WAL;${tablesDdl('INTEGER')}`);
    } catch (err) {
      throw new ConfigurationError(`run history ${path} cannot be opened: ${(err as Error).message}; give another with --history (a file, postgres://…, or none)`, { cause: err });
    }
  }

  async record(run: RunRecord): Promise<void> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      this.db.prepare('DELETE FROM cases WHERE run_id = ?').run(run.runId);
      this.db.prepare('INSERT OR REPLACE INTO runs (run_id, started_at, commit_id, duration_ms, exit_code, output_dir) VALUES (?, ?, ?, ?, ?, ?)').run(run.runId, run.startedAt, run.commit, run.durationMs, run.exitCode, run.outputDir);
      const ins = this.db.prepare(`INSERT INTO cases (run_id, ${CASE_COLUMNS.join(', ')}) VALUES (?, ${CASE_COLUMNS.map(() => '?').join(', ')})`);
      for (const c of run.cases) ins.run(run.runId, ...caseRow(c));
      this.db.exec('COMMIT');
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  async recentRuns(limit: number): Promise<RunRecord[]> {
    const runs = this.db.prepare('SELECT * FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?').all(limit) as unknown as RunRow[];
    const cases = this.db.prepare(`SELECT ${CASE_COLUMNS.join(', ')} FROM cases WHERE run_id = ? ORDER BY case_id, repeat_index`);
    return runs.map((r) => runFromRow(r, (cases.all(r.run_id) as unknown as CaseRow[]).map(caseFromRow)));
  }

  async forget(runIds: string[]): Promise<void> {
    const del = this.db.prepare('DELETE FROM runs WHERE run_id = ?');
    const delCases = this.db.prepare('DELETE FROM cases WHERE run_id = ?');
    for (const id of runIds) {
      delCases.run(id);
      del.run(id);
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
