// Whether a process still runs: lock owners, children, and the tests' leak checks.
import { readFileSync } from 'node:fs';

/** True while `pid` exists (zombies excluded). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
