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
      const columns = this.db.prepare('PRAGMA table_info(runs)').all() as Array<{ name: string }>;
      if (!columns.some((c) => c.name === 'inputs')) this.db.exec('ALTER TABLE runs ADD COLUMN inputs TEXT');
    } catch (err) {
      throw new ConfigurationError(`run history ${path} cannot be opened: ${(err as Error).message}; give another with --history (a file, postgres://…, or none)`, { cause: err });
    }
  }

  async record(run: RunRecord): Promise<void> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      this.db.prepare('DELETE FROM cases WHERE run_id = ?').run(run.runId);
      this.db.prepare('INSERT OR REPLACE INTO runs (run_id, started_at, commit_id, duration_ms, exit_code, output_dir, inputs) VALUES (?, ?, ?, ?, ?, ?, ?)').run(run.runId, run.startedAt, run.commit, run.durationMs, run.exitCode, run.outputDir, JSON.stringify(run.inputs ?? {}));
      const ins = this.db.prepare(`INSERT INTO cases (run_id, ${CASE_COLUMNS.join(', ')}) VALUES (?, ${CASE_COLUMNS.map(() => '?').join(', ')})`);
      for (const c of run.cases) ins.run(run.runId, ...caseRow(c));
      const sys = this.db.prepare('INSERT INTO systems (id, paths) VALUES (?, ?) ON CONFLICT (id) DO NOTHING');
      for (const [id, paths] of Object.entries(run.systems ?? {})) sys.run(id, JSON.stringify(paths));
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

  async systemContents(ids: string[]): Promise<Record<string, string[]>> {
    const get = this.db.prepare('SELECT paths FROM systems WHERE id = ?');
    const out: Record<string, string[]> = {};
    for (const id of ids) {
      const row = get.get(id) as { paths: string } | undefined;
      if (row) out[id] = JSON.parse(row.paths) as string[];
    }
    return out;
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
