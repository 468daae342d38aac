// The history's tables as both stores have them: a row per run, a row per case and repeat (properties and machines as
// JSON text), a row per system identity (its closure or packages as JSON text, kept once), and the conversions between
// rows and records.
import type { CaseStatus } from '../runner/results.ts';
import type { CaseRecord, RunRecord } from './history.ts';

export const CASE_COLUMNS = ['case_id', 'repeat_index', 'scenario', 'variant', 'status', 'duration_ms', 'attempts', 'error_kind', 'error_message', 'properties', 'machines'] as const;

export interface RunRow {
  run_id: string;
  started_at: string;
  commit_id: string;
  duration_ms: number | string;
  exit_code: number | string;
  output_dir: string;
  /** JSON of the run's inputs; null in runs recorded before inputs were. */
  inputs?: string | null;
}
export type CaseRow = Record<(typeof CASE_COLUMNS)[number], string | number | null>;

/**
 * The tables, as both stores create them; `ms` is the type of a duration in milliseconds (SQLite's INTEGER is 64-bit,
 * PostgreSQL's is not: BIGINT there).
 */
export function tablesDdl(ms: 'INTEGER' | 'BIGINT'): string {
  // A history made before runs had inputs gets the column from the store (ALTER TABLE; SQLite has no IF NOT EXISTS there).
  const type = (c: string) => (c.endsWith('_ms') ? ms : c === 'repeat_index' || c === 'attempts' ? 'INTEGER' : 'TEXT');
  return `
    CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, commit_id TEXT NOT NULL, duration_ms ${ms} NOT NULL, exit_code INTEGER NOT NULL, output_dir TEXT NOT NULL, inputs TEXT);
    CREATE TABLE IF NOT EXISTS cases (run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, ${CASE_COLUMNS.map((c) => `${c} ${type(c)}`).join(', ')}, PRIMARY KEY (run_id, case_id, repeat_index));
    CREATE INDEX IF NOT EXISTS cases_by_case ON cases (case_id);
    CREATE TABLE IF NOT EXISTS systems (id TEXT PRIMARY KEY, paths TEXT NOT NULL);
  `;
}

/** A case's values in CASE_COLUMNS order. */
export function caseRow(c: CaseRecord): Array<string | number | null> {
  return [c.caseId, c.repeat, c.scenario, c.variant, c.status, c.durationMs, c.attempts, c.errorKind ?? null, c.errorMessage ?? null, JSON.stringify(c.properties), JSON.stringify(c.machines)];
}

export function caseFromRow(r: CaseRow): CaseRecord {
  return {
    caseId: String(r.case_id),
    repeat: Number(r.repeat_index),
    scenario: String(r.scenario),
    variant: String(r.variant),
    status: String(r.status) as CaseStatus,
    durationMs: Number(r.duration_ms),
    attempts: Number(r.attempts),
    errorKind: r.error_kind === null ? undefined : String(r.error_kind),
    errorMessage: r.error_message === null ? undefined : String(r.error_message),
    properties: JSON.parse(String(r.properties)) as Record<string, string>,
    machines: JSON.parse(String(r.machines)) as CaseRecord['machines'],
  };
}

export function runFromRow(r: RunRow, cases: CaseRecord[]): RunRecord {
  return { runId: r.run_id, startedAt: r.started_at, commit: r.commit_id, durationMs: Number(r.duration_ms), exitCode: Number(r.exit_code), outputDir: r.output_dir, inputs: r.inputs ? (JSON.parse(r.inputs) as Record<string, string>) : {}, cases };
}
