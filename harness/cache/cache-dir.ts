// Where fleetlab keeps what it builds and probes between runs.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The cache root: $FLEETLAB_CACHE, else $XDG_CACHE_HOME/fleetlab, else ~/.cache/fleetlab. */
export function cacheDir(...parts: string[]): string {
  const root = process.env.FLEETLAB_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'fleetlab');
  return join(root, ...parts);
}
