// The release gate: the latest run classified against the history, and a verdict by policy. Fatal by default: new
// failures, failures still failing since an earlier run, known failures whose entry expired, and infrastructure
// errors above a threshold (default 0); known and flaky failures are listed, not fatal.
import { caseTitle } from '../runner/results.ts';
import { type Classified, classify, type FailureClass, type HistoryStore, type RunRecord } from './history.ts';
import type { KnownFailure } from './known-failures.ts';

export interface GatePolicy {
  /** The classes that fail the gate. */
  failOn: FailureClass[];
  /** Infrastructure errors (cases ending in status "error") the gate tolerates. */
  maxInfrastructureErrors: number;
  /** Earlier runs to compare with. */
  window: number;
}

export const DEFAULT_POLICY: GatePolicy = { failOn: ['new', 'still-failing', 'known-expired'], maxInfrastructureErrors: 0, window: 20 };

export interface GateVerdict {
  pass: boolean;
  run: RunRecord;
  classified: Classified[];
  /** Why it fails, a line each (empty when it passes). */
  fatal: string[];
  /** The verdict as a release manager pastes it. */
  text: string;
}

/** Reads the latest run (or `runId`) and the runs before it from `store`, and judges it by `policy`. */
export async function gate(store: HistoryStore, known: KnownFailure[], policy: GatePolicy, runId?: string, now = new Date()): Promise<GateVerdict | undefined> {
  const runs = await store.recentRuns(runId ? 10_000 : policy.window + 1);
  const at = runId ? runs.findIndex((r) => r.runId === runId) : 0;
  const run = runs[at];
  if (!run) return undefined;
  return verdict(run, classify(run, runs.slice(at + 1, at + 1 + policy.window), known, now), policy);
}

/** The verdict on `run` from its classified cases. */
export function verdict(run: RunRecord, classified: Classified[], policy: GatePolicy): GateVerdict {
  const fatal: string[] = [];
  for (const cls of policy.failOn) {
    const n = classified.filter((c) => c.class === cls && !(c.status === 'error' && cls !== 'known-expired')).length;
    if (n) fatal.push(`${n} ${cls} failure${n === 1 ? '' : 's'}`);
  }
  const infra = classified.filter((c) => c.status === 'error' && c.class !== 'known');
  if (infra.length > policy.maxInfrastructureErrors) fatal.push(`${infra.length} infrastructure error${infra.length === 1 ? '' : 's'} (at most ${policy.maxInfrastructureErrors} tolerated)`);
  const ids = new Set(run.cases.map((c) => c.caseId));
  const lines = [
    `fleetlab gate: ${fatal.length ? 'FAIL' : 'PASS'} — run ${run.runId} (commit ${run.commit.slice(0, 12)}, ${run.startedAt}): ${ids.size} case${ids.size === 1 ? '' : 's'}, ${classified.length} not passed`,
    ...classified.map((c) => {
      const err = c.errorMessage ? ` — ${c.errorKind ?? 'error'}: ${c.errorMessage.split('\n')[0]!.slice(0, 160)}` : '';
      return `  ${c.class.toUpperCase().padEnd(14)} ${caseTitle(c)} (${c.status}): ${c.why}${err}`;
    }),
    fatal.length ? `fatal: ${fatal.join('; ')} (policy: fail on ${policy.failOn.join(', ')}; infrastructure errors above ${policy.maxInfrastructureErrors})` : `nothing fatal (policy: fail on ${policy.failOn.join(', ')}; infrastructure errors above ${policy.maxInfrastructureErrors})`,
  ];
  return { pass: fatal.length === 0, run, classified, fatal, text: lines.join('\n') };
}
