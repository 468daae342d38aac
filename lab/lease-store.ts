// What a lease store is, apart from where it keeps its leases: the types both stores (SQLite in leases.ts, PostgreSQL
// in leases-postgres.ts) implement, and the owner id every runner writes into them.
import { hostname } from 'node:os';

export type BoardState =
  | { state: 'free' }
  | { state: 'leased'; owner: string; expiresAt: string }
  | { state: 'reserved'; holder: string; until: string; reason?: string }
  | { state: 'quarantined'; reason: string; since: string };

/** A board's last health check: when, whether it passed, why not, and where its console log is. */
export interface HealthRecord {
  at: string;
  ok: boolean;
  detail: string;
  log?: string;
}

export interface Lease {
  board: string;
  owner: string;
  expiresAt: number;
}

export interface LeaseStore {
  /**
   * Leases the first free board of `boards` (not leased, reserved by someone else, or quarantined) to `owner`;
   * `evenQuarantined` takes a quarantined one too (the health check that may bring it back).
   */
  acquire(boards: string[], owner: string, ttlMs: number, opts?: { evenQuarantined?: boolean }): Promise<Lease | undefined>;
  /** Extends a lease; false when it is no longer `owner`'s (expired and taken, or released). */
  renew(board: string, owner: string, ttlMs: number): Promise<boolean>;
  release(board: string, owner: string): Promise<void>;
  /** Releases every lease of `owner` synchronously where the store can (process exit). */
  releaseAllSync?(owner: string): void;
  reserve(board: string, holder: string, untilMs: number, reason?: string): Promise<void>;
  unreserve(board: string, holder?: string): Promise<void>;
  quarantine(board: string, reason: string): Promise<void>;
  unquarantine(board: string): Promise<void>;
  state(board: string): Promise<BoardState>;
  /** Records a board's health check (the last one per board is kept). */
  recordHealth(board: string, r: { ok: boolean; detail: string; log?: string }): Promise<void>;
  /** The board's last health check, if it had one. */
  health(board: string): Promise<HealthRecord | undefined>;
  close(): Promise<void>;
}

/** A lease owner id: host, pid and a run id, readable in `lab status`. */
export function ownerId(run: string): string {
  return `${hostname()}:${process.pid}:${run}`;
}

