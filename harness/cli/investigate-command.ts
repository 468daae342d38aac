// fleetlab investigate <case>: the case's last good and first bad run from the history, and what differs between them
// (harness/history/investigate.ts); --rerun runs it with one half of each and names the side the failure follows
// (harness/history/rerun.ts). Exit 0 with the investigation; 2: no history, no such case, nothing to compare.
import { join, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { formatInvestigation, investigate } from '../history/investigate.ts';
import { historyLocation, openHistory } from '../history/open-history.ts';
import { rerunSides, type RerunVerdict } from '../history/rerun.ts';

export async function investigateCommand(a: { case: string; history?: string; window?: number; json?: boolean; rerun?: boolean; output?: string }): Promise<number> {
  const location = historyLocation(a.history);
  if (location === 'none') throw new ConfigurationError('fleetlab investigate needs a run history; --history none gives it none');
  if (!(Number.isInteger(a.window ?? 100) && (a.window ?? 100) >= 2)) throw new ConfigurationError(`--window ${a.window}: expected a whole number >= 2 (runs to look through).`);
  const store = (await openHistory(location, { existing: true }))!;
  const inv = await investigate(store, a.case, { window: a.window }).finally(() => store.close());
  if (!a.json) console.log(formatInvestigation(inv));
  let rerun: RerunVerdict | undefined;
  if (a.rerun) {
    const outputRoot = resolve(a.output ?? join('reports', `investigate-${new Date().toISOString().replace(/[:.]/g, '-')}`));
    if (!a.json) console.log(`\nrerunning ${inv.caseId} twice (reports in ${outputRoot}):`);
    rerun = await rerunSides(inv, { cwd: process.cwd(), command: process.execPath, args: [...process.execArgv, process.argv[1]!], env: process.env as Record<string, string>, outputRoot });
    if (!a.json) {
      for (const r of rerun.reruns) console.log(`  ${r.label}: ${r.status} (code ${r.code}, inputs ${Object.entries(r.inputs).map(([k, v]) => `${k}=${v}`).join(' ') || 'none'})`);
      console.log(`follows: ${rerun.follows} — ${rerun.text}`);
    }
  }
  if (a.json) console.log(JSON.stringify({ ...inv, ...(rerun ? { rerun } : {}) }, null, 2));
  return 0;
}
