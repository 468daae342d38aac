// Run history in PostgreSQL, for a team's runners sharing one history (--history postgres://…): the same tables as
// the SQLite store, a run written in one transaction.
import pg from 'pg';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { HistoryStore, RunRecord } from './history.ts';
import { CASE_COLUMNS, caseFromRow, caseRow, type CaseRow, type RunRow, runFromRow, tablesDdl } from './history-rows.ts';

export class PostgresHistory implements HistoryStore {
  readonly where: string;
  private readonly pool: pg.Pool;

  private constructor(pool: pg.Pool, where: string) {
    this.pool = pool;
    this.where = where;
  }

  static async connect(url: string): Promise<PostgresHistory> {
    const where = url.replace(/:[^:@/]*@/, ':***@');
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000 });
    pool.on('error', () => undefined);
    try {
      await pool.query(tablesDdl('BIGINT'));
      await pool.query('ALTER TABLE runs ADD COLUMN IF NOT EXISTS inputs TEXT');
    } catch (err) {
      await pool.end().catch(() => undefined);
      // Two runners creating the tables at once can collide on the catalog; the second finds them made.
      if (!/already exists|duplicate key/.test((err as Error).message)) throw new ConfigurationError(`run history ${where} cannot be used: ${(err as Error).message}`, { cause: err });
      return PostgresHistory.connect(url);
    }
    return new PostgresHistory(pool, where);
  }

  async record(run: RunRecord): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('DELETE FROM runs WHERE run_id = $1', [run.runId]);
      await client.query('INSERT INTO runs (run_id, started_at, commit_id, duration_ms, exit_code, output_dir, inputs) VALUES ($1, $2, $3, $4, $5, $6, $7)', [run.runId, run.startedAt, run.commit, run.durationMs, run.exitCode, run.outputDir, JSON.stringify(run.inputs ?? {})]);
      const params = CASE_COLUMNS.map((_, i) => `$${i + 2}`).join(', ');
      for (const c of run.cases) await client.query(`INSERT INTO cases (run_id, ${CASE_COLUMNS.join(', ')}) VALUES ($1, ${params})`, [run.runId, ...caseRow(c)]);
      for (const [id, paths] of Object.entries(run.systems ?? {})) await client.query('INSERT INTO systems (id, paths) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [id, JSON.stringify(paths)]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async recentRuns(limit: number): Promise<RunRecord[]> {
    const runs = await this.pool.query<RunRow>('SELECT * FROM runs ORDER BY started_at DESC, run_id DESC LIMIT $1', [limit]);
    const out: RunRecord[] = [];
    for (const r of runs.rows) {
      const cases = await this.pool.query<CaseRow>(`SELECT ${CASE_COLUMNS.join(', ')} FROM cases WHERE run_id = $1 ORDER BY case_id, repeat_index`, [r.run_id]);
      out.push(runFromRow(r, cases.rows.map(caseFromRow)));
    }
    return out;
  }

  async systemContents(ids: string[]): Promise<Record<string, string[]>> {
    const r = await this.pool.query<{ id: string; paths: string }>('SELECT id, paths FROM systems WHERE id = ANY($1)', [ids]);
    return Object.fromEntries(r.rows.map((row) => [row.id, JSON.parse(row.paths) as string[]]));
  }

  async forget(runIds: string[]): Promise<void> {
    await this.pool.query('DELETE FROM runs WHERE run_id = ANY($1)', [runIds]);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
