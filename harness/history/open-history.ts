// The run history a command uses: --history (a SQLite file, postgres://…, or "none"), else $FLEETLAB_HISTORY, else
// reports/history.sqlite in the working directory (the project's reports folder, beside reports/<run-id>/).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { HistoryStore } from './history.ts';
import { SqliteHistory } from './history-sqlite.ts';

/** Where the history is by default: $FLEETLAB_HISTORY, else reports/history.sqlite. */
export function historyLocation(given?: string): string {
  return given || process.env.FLEETLAB_HISTORY || 'reports/history.sqlite';
}

/**
 * Opens the history at `location` (see historyLocation); undefined for "none". `existing`: a SQLite file that is not
 * there is a configuration error (a reader such as the gate), instead of a new history. The PostgreSQL driver is
 * loaded only for a PostgreSQL history, not at every run's start.
 */
export async function openHistory(location: string, opts: { existing?: boolean } = {}): Promise<HistoryStore | undefined> {
  if (location === 'none') return undefined;
  if (/^postgres(ql)?:\/\//.test(location)) {
    const { PostgresHistory } = await import('./history-postgres.ts');
    return PostgresHistory.connect(location);
  }
  if (opts.existing && !existsSync(location)) throw new ConfigurationError(`no run history at ${location}: fleetlab run records each run there (or give --history)`);
  return new SqliteHistory(resolve(location));
}
