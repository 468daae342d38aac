// Leases of lab boards: who holds a board, until when. A lease has an owner, a heartbeat and an expiry; a runner
// renews its leases while it runs (every third of the TTL), releases them when it ends (SIGTERM and Ctrl-C too), and a
// runner killed with SIGKILL loses them when they expire, so no board is held forever by a cancelled CI job.
// Reservations (a person reproducing a bug holds a board for hours; CI skips or waits) and quarantine (a board that
// failed its health check is handed to no one) live beside them.
//
// SQLite by default, through Node's built-in node:sqlite (no native module): one file per lab, shared by every
// process on the host; WAL mode and BEGIN IMMEDIATE make each acquisition atomic. Every decision is one transaction
// that compares against the database's own clock-independent inputs (the caller's now), so racing processes never
// hand out one board twice.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ConfigurationError } from '../harness/errors/fleetlab-error.ts';
import type { BoardState, Lease, LeaseStore, HealthRecord } from './lease-store.ts';

const iso = (ms: number) => new Date(ms).toISOString();

export class SqliteLeases implements LeaseStore {
  private readonly db: DatabaseSync;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    try {
      this.db = new DatabaseSync(path, { timeout: 10_000 });
    } catch (err) {
      throw new ConfigurationError(`lab database ${path} cannot be opened: ${(err as Error).message}; give another with --lab-db`, { cause: err });
    }
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      CREATE TABLE IF NOT EXISTS leases (board TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS reservations (board TEXT PRIMARY KEY, holder TEXT NOT NULL, until INTEGER NOT NULL, reason TEXT);
      CREATE TABLE IF NOT EXISTS quarantine (board TEXT PRIMARY KEY, reason TEXT NOT NULL, since INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS health (board TEXT PRIMARY KEY, at INTEGER NOT NULL, ok INTEGER NOT NULL, detail TEXT NOT NULL, log TEXT);
    `);
  }

  private tx<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const v = fn();
      this.db.exec('COMMIT');
      return v;
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }

  async acquire(boards: string[], owner: string, ttlMs: number, opts: { evenQuarantined?: boolean } = {}): Promise<Lease | undefined> {
    const now = Date.now();
    return this.tx(() => {
      for (const board of boards) {
        if (!opts.evenQuarantined && this.db.prepare('SELECT 1 FROM quarantine WHERE board = ?').get(board)) continue;
        const r = this.db.prepare('SELECT holder FROM reservations WHERE board = ? AND until > ?').get(board, now) as { holder: string } | undefined;
        if (r && r.holder !== owner) continue;
        this.db.prepare('DELETE FROM leases WHERE board = ? AND expires_at <= ?').run(board, now);
        const ins = this.db.prepare('INSERT INTO leases (board, owner, acquired_at, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (board) DO NOTHING').run(board, owner, now, now + ttlMs);
        if (ins.changes === 1) return { board, owner, expiresAt: now + ttlMs };
      }
      return undefined;
    });
  }

  async renew(board: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    return this.db.prepare('UPDATE leases SET expires_at = ? WHERE board = ? AND owner = ? AND expires_at > ?').run(now + ttlMs, board, owner, now).changes === 1;
  }

  async release(board: string, owner: string): Promise<void> {
    this.db.prepare('DELETE FROM leases WHERE board = ? AND owner = ?').run(board, owner);
  }

  releaseAllSync(owner: string): void {
    if (!this.db.isOpen) return;
    this.db.prepare('DELETE FROM leases WHERE owner = ?').run(owner);
  }

  async reserve(board: string, holder: string, untilMs: number, reason?: string): Promise<void> {
    this.db.prepare('INSERT INTO reservations (board, holder, until, reason) VALUES (?, ?, ?, ?) ON CONFLICT (board) DO UPDATE SET holder = excluded.holder, until = excluded.until, reason = excluded.reason').run(board, holder, untilMs, reason ?? null);
  }

  async unreserve(board: string, holder?: string): Promise<void> {
    if (holder) this.db.prepare('DELETE FROM reservations WHERE board = ? AND holder = ?').run(board, holder);
    else this.db.prepare('DELETE FROM reservations WHERE board = ?').run(board);
  }

  async quarantine(board: string, reason: string): Promise<void> {
    this.db.prepare('INSERT INTO quarantine (board, reason, since) VALUES (?, ?, ?) ON CONFLICT (board) DO UPDATE SET reason = excluded.reason').run(board, reason, Date.now());
  }

  async unquarantine(board: string): Promise<void> {
    this.db.prepare('DELETE FROM quarantine WHERE board = ?').run(board);
  }

  async state(board: string): Promise<BoardState> {
    const now = Date.now();
    const q = this.db.prepare('SELECT reason, since FROM quarantine WHERE board = ?').get(board) as { reason: string; since: number } | undefined;
    if (q) return { state: 'quarantined', reason: q.reason, since: iso(q.since) };
    const l = this.db.prepare('SELECT owner, expires_at FROM leases WHERE board = ? AND expires_at > ?').get(board, now) as { owner: string; expires_at: number } | undefined;
    if (l) return { state: 'leased', owner: l.owner, expiresAt: iso(l.expires_at) };
    const r = this.db.prepare('SELECT holder, until, reason FROM reservations WHERE board = ? AND until > ?').get(board, now) as { holder: string; until: number; reason: string | null } | undefined;
    if (r) return { state: 'reserved', holder: r.holder, until: iso(r.until), ...(r.reason ? { reason: r.reason } : {}) };
    return { state: 'free' };
  }

  async recordHealth(board: string, r: { ok: boolean; detail: string; log?: string }): Promise<void> {
    this.db.prepare('INSERT INTO health (board, at, ok, detail, log) VALUES (?, ?, ?, ?, ?) ON CONFLICT (board) DO UPDATE SET at = excluded.at, ok = excluded.ok, detail = excluded.detail, log = excluded.log').run(board, Date.now(), r.ok ? 1 : 0, r.detail, r.log ?? null);
  }

  async health(board: string): Promise<HealthRecord | undefined> {
    const h = this.db.prepare('SELECT at, ok, detail, log FROM health WHERE board = ?').get(board) as { at: number; ok: number; detail: string; log: string | null } | undefined;
    return h ? { at: iso(h.at), ok: h.ok === 1, detail: h.detail, ...(h.log ? { log: h.log } : {}) } : undefined;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** The lease store a --lab-db value names: a path (SQLite) or a postgres:// URL. */
export async function openLeaseStore(spec: string): Promise<LeaseStore> {
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const { PostgresLeases } = await import('./leases-postgres.ts');
    return PostgresLeases.connect(spec);
  }
  return new SqliteLeases(spec.replace(/^sqlite:/, ''));
}
