// The run history a command uses: --history (a SQLite file, postgres://…, or "none"), else $FLEETLAB_HISTORY, else
// reports/history.sqlite in the working directory (the project's reports folder, beside reports/<run-id>/).
import { resolve } from 'node:path';
import type { HistoryStore } from './history.ts';
import { PostgresHistory } from './history-postgres.ts';
import { SqliteHistory } from './history-sqlite.ts';

/** Where the history is by default: $FLEETLAB_HISTORY, else reports/history.sqlite. */
export function historyLocation(given?: string): string {
  return given || process.env.FLEETLAB_HISTORY || 'reports/history.sqlite';
}

/** Opens the history at `location` (see historyLocation); undefined for "none". */
export async function openHistory(location: string): Promise<HistoryStore | undefined> {
  if (location === 'none') return undefined;
  if (/^postgres(ql)?:\/\//.test(location)) return PostgresHistory.connect(location);
  return new SqliteHistory(resolve(location));
}
