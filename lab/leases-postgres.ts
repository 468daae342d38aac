// Leases in PostgreSQL, for labs shared by several hosts and CI runners (--lab-db postgres://…). The same tables as
// the SQLite store; times come from the database's clock, so runners whose clocks differ agree on expiry. An
// acquisition is one INSERT … ON CONFLICT DO UPDATE … WHERE the old lease has expired: the row lock of the upsert
// decides between racing runners, with no coordinator of fleetlab's own.
import pg from 'pg';
import { ConfigurationError } from '../harness/errors/fleetlab-error.ts';
import type { BoardState, Lease, LeaseStore, HealthRecord } from './lease-store.ts';

const NOW = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;
const iso = (ms: string | number) => new Date(Number(ms)).toISOString();

export class PostgresLeases implements LeaseStore {
  private readonly pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.pool = pool;
  }

  static async connect(url: string): Promise<PostgresLeases> {
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000 });
    pool.on('error', () => undefined);
    try {
      await pool.query(`
        CREATE TABLE IF NOT EXISTS leases (board TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
        CREATE TABLE IF NOT EXISTS reservations (board TEXT PRIMARY KEY, holder TEXT NOT NULL, until BIGINT NOT NULL, reason TEXT);
        CREATE TABLE IF NOT EXISTS quarantine (board TEXT PRIMARY KEY, reason TEXT NOT NULL, since BIGINT NOT NULL);
        CREATE TABLE IF NOT EXISTS health (board TEXT PRIMARY KEY, at BIGINT NOT NULL, ok BOOLEAN NOT NULL, detail TEXT NOT NULL, log TEXT);
      `);
    } catch (err) {
      await pool.end().catch(() => undefined);
      // Two runners creating the tables at once can collide on the catalog; the second one finds them made.
      if (!/already exists|duplicate key/.test((err as Error).message)) {
        throw new ConfigurationError(`lab database ${url.replace(/:[^:@/]*@/, ':***@')} cannot be used: ${(err as Error).message}`, { cause: err });
      }
      return PostgresLeases.connect(url);
    }
    return new PostgresLeases(pool);
  }

  async acquire(boards: string[], owner: string, ttlMs: number, opts: { evenQuarantined?: boolean } = {}): Promise<Lease | undefined> {
    for (const board of boards) {
      const r = await this.pool.query<{ expires_at: string }>(
        `INSERT INTO leases (board, owner, acquired_at, expires_at)
           SELECT $1, $2, ${NOW}, ${NOW} + $3
           WHERE ($4 OR NOT EXISTS (SELECT 1 FROM quarantine WHERE board = $1))
             AND NOT EXISTS (SELECT 1 FROM reservations WHERE board = $1 AND until > ${NOW} AND holder <> $2)
         ON CONFLICT (board) DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
           WHERE leases.expires_at <= ${NOW}
         RETURNING expires_at`,
        [board, owner, ttlMs, !!opts.evenQuarantined],
      );
      if (r.rowCount === 1) return { board, owner, expiresAt: Number(r.rows[0]!.expires_at) };
    }
    return undefined;
  }

  async renew(board: string, owner: string, ttlMs: number): Promise<boolean> {
    const r = await this.pool.query(`UPDATE leases SET expires_at = ${NOW} + $3 WHERE board = $1 AND owner = $2 AND expires_at > ${NOW}`, [board, owner, ttlMs]);
    return r.rowCount === 1;
  }

  async release(board: string, owner: string): Promise<void> {
    await this.pool.query('DELETE FROM leases WHERE board = $1 AND owner = $2', [board, owner]);
  }

  async reserve(board: string, holder: string, untilMs: number, reason?: string): Promise<void> {
    await this.pool.query(
      'INSERT INTO reservations (board, holder, until, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (board) DO UPDATE SET holder = excluded.holder, until = excluded.until, reason = excluded.reason',
      [board, holder, untilMs, reason ?? null],
    );
  }

  async unreserve(board: string, holder?: string): Promise<void> {
    if (holder) await this.pool.query('DELETE FROM reservations WHERE board = $1 AND holder = $2', [board, holder]);
    else await this.pool.query('DELETE FROM reservations WHERE board = $1', [board]);
  }

  async quarantine(board: string, reason: string): Promise<void> {
    await this.pool.query(`INSERT INTO quarantine (board, reason, since) VALUES ($1, $2, ${NOW}) ON CONFLICT (board) DO UPDATE SET reason = excluded.reason`, [board, reason]);
  }

  async unquarantine(board: string): Promise<void> {
    await this.pool.query('DELETE FROM quarantine WHERE board = $1', [board]);
  }

  async recordHealth(board: string, r: { ok: boolean; detail: string; log?: string }): Promise<void> {
    await this.pool.query(`INSERT INTO health (board, at, ok, detail, log) VALUES ($1, ${NOW}, $2, $3, $4) ON CONFLICT (board) DO UPDATE SET at = excluded.at, ok = excluded.ok, detail = excluded.detail, log = excluded.log`, [board, r.ok, r.detail, r.log ?? null]);
  }

  async health(board: string): Promise<HealthRecord | undefined> {
    const h = await this.pool.query<{ at: string; ok: boolean; detail: string; log: string | null }>('SELECT at, ok, detail, log FROM health WHERE board = $1', [board]);
    const r = h.rows[0];
    return r ? { at: iso(r.at), ok: r.ok, detail: r.detail, ...(r.log ? { log: r.log } : {}) } : undefined;
  }

  async state(board: string): Promise<BoardState> {
    const q = await this.pool.query<{ reason: string; since: string }>('SELECT reason, since FROM quarantine WHERE board = $1', [board]);
    if (q.rows[0]) return { state: 'quarantined', reason: q.rows[0].reason, since: iso(q.rows[0].since) };
    const l = await this.pool.query<{ owner: string; expires_at: string }>(`SELECT owner, expires_at FROM leases WHERE board = $1 AND expires_at > ${NOW}`, [board]);
    if (l.rows[0]) return { state: 'leased', owner: l.rows[0].owner, expiresAt: iso(l.rows[0].expires_at) };
    const r = await this.pool.query<{ holder: string; until: string; reason: string | null }>(`SELECT holder, until, reason FROM reservations WHERE board = $1 AND until > ${NOW}`, [board]);
    if (r.rows[0]) return { state: 'reserved', holder: r.rows[0].holder, until: iso(r.rows[0].until), ...(r.rows[0].reason ? { reason: r.rows[0].reason } : {}) };
    return { state: 'free' };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
