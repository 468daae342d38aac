// The commit a run's reports carry: `git rev-parse HEAD` in the working directory, "unknown" outside a repository.
import { execFileSync } from 'node:child_process';

let commit: string | undefined;

/** HEAD's commit id, asked of git once per process. */
export function gitCommit(): string {
  if (commit === undefined) {
    try {
      commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      commit = 'unknown';
    }
  }
  return commit;
}
