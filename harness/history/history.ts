// Run history: what each run recorded (its cases' outcomes, durations, properties, machines, the git commit), and what a
// failure is against it: new, still failing, flaky or known. The stores (SQLite, PostgreSQL) keep RunRecords; the
// classifier is a pure function over them, so the gate and the reports agree.
import type { RunInfo, RunSummary } from '../report/reporter.ts';
import type { CaseResult, CaseStatus, FailureClass } from '../runner/results.ts';
import { type KnownFailure, knownEntryFor } from './known-failures.ts';
import { identityIds, type SystemIdentity, systemContents } from '../runner/system-identity.ts';

/** One case of a run as the history keeps it: a repeated case (--repeat-each) has one record per repeat. */
export interface CaseRecord {
  /** The case's id without a repeat suffix: "scenarios/smoke.ts::smoke[x86_64-direct]". */
  caseId: string;
  /** 1..N for --repeat-each N, else 1. */
  repeat: number;
  scenario: string;
  variant: string;
  status: CaseStatus;
  durationMs: number;
  /** Tries (retries after infrastructure errors count). */
  attempts: number;
  errorKind?: string;
  errorMessage?: string;
  /** What the scenario measured (ctx.property), for trends. */
  properties: Record<string, string>;
  /** Each machine's role and profile, and the system it ran (when the run read it). */
  machines: Array<{ role: string; profile: string; system?: SystemIdentity }>;
}

/** One run as the history keeps it. */
export interface RunRecord {
  runId: string;
  startedAt: string;
  /** The git commit of the working directory the run started in ("unknown" outside a repository). */
  commit: string;
  durationMs: number;
  exitCode: number;
  outputDir: string;
  cases: CaseRecord[];
  /** What the run was given (--input NAME=VALUE). */
  inputs?: Record<string, string>;
  /** The contents of the systems its cases name (closures, image packages), by identity: kept once in the store. */
  systems?: Record<string, string[]>;
}

/** Where runs are kept: SQLite (history-sqlite.ts) or PostgreSQL (history-postgres.ts). */
export interface HistoryStore {
  /** Where it is, for messages (a PostgreSQL URL without its password). */
  readonly where: string;
  /** Records a run (again: replaces it). */
  record(run: RunRecord): Promise<void>;
  /** The last `limit` runs, newest first (by start time). */
  recentRuns(limit: number): Promise<RunRecord[]>;
  /** The contents kept for these system identities (toplevels, images); ids it does not have are left out. */
  systemContents(ids: string[]): Promise<Record<string, string[]>>;
  /** Removes these runs (the shards a merged run replaces); ids it does not have are ignored. */
  forget(runIds: string[]): Promise<void>;
  close(): Promise<void>;
}

/** A run's record from its reporters' view: the last try of each case decides its status. */
export function runRecord(run: RunInfo, summary: RunSummary, commit: string): RunRecord {
  const cases = summary.results.map(caseRecord);
  return {
    runId: run.runId,
    startedAt: run.startedAt,
    commit,
    durationMs: Math.round(summary.durationMs),
    exitCode: summary.exitCode,
    outputDir: run.outputDir,
    inputs: run.inputs ?? {},
    cases,
    systems: systemContents(identityIds(cases.flatMap((c) => c.machines.map((m) => m.system)))),
  };
}

/** A case's record: its id without the repeat, the last try's error, properties and machines. */
export function caseRecord(r: CaseResult): CaseRecord {
  const last = r.attempts.at(-1);
  return {
    caseId: r.repeat?.caseId ?? r.id,
    repeat: r.repeat?.index ?? 1,
    scenario: r.scenario,
    variant: r.variant,
    status: r.status,
    durationMs: Math.round(r.durationMs),
    attempts: r.attempts.length,
    errorKind: last?.error?.kind,
    errorMessage: last?.error?.message,
    properties: last?.properties ?? {},
    machines: (last?.machines ?? []).map((m) => ({ role: m.role, profile: m.profile, ...(m.system ? { system: m.system } : {}) })),
  };
}

/**
 * What a failure is:
 * - `known`: a known-failures entry matches it (and has not expired); `known-expired`: one matched but its date passed;
 * - `flaky`: it passed on a retry, or its repeats in this run disagree, or the same commit had it pass and fail;
 * - `still-failing`: the last earlier run that had the case failed it too;
 * - `new`: it passed the last time it ran, or never ran before.
 */
export type { FailureClass };

/** One case of the run that did not simply pass, and what it is. */
export interface Classified {
  caseId: string;
  scenario: string;
  variant: string;
  /** The worst status among its repeats in this run (failed, error, flaky, interrupted). */
  status: CaseStatus;
  class: FailureClass;
  /** Why, in a few words ("passed in run X on abc1234", "matches known failure BUG-12"). */
  why: string;
  errorKind?: string;
  errorMessage?: string;
  known?: KnownFailure;
}

const BAD: ReadonlySet<CaseStatus> = new Set<CaseStatus>(['failed', 'error', 'interrupted']);

/** Whether two runs were given the same inputs (none given counts as {}). */
export function sameInputs(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const key = (r: Record<string, string> | undefined) => JSON.stringify(Object.entries(r ?? {}).sort(([x], [y]) => (x < y ? -1 : 1)));
  return key(a) === key(b);
}

/** Whether two runs of a case tested the same systems: the same inputs, and each machine on the same toplevel where both runs read one. */
function sameSystems(a: RunRecord, ac: CaseRecord, b: RunRecord, bc: CaseRecord): boolean {
  if (!sameInputs(a.inputs, b.inputs)) return false;
  return ac.machines.every((m) => {
    const other = bc.machines.find((o) => o.role === m.role);
    return !m.system?.toplevel || !other?.system?.toplevel || m.system.toplevel === other.system.toplevel;
  });
}

/**
 * Classifies each case of `run` that failed, errored, was interrupted or was flaky, against `earlier` runs (newest
 * first, `run` itself not among them) and the known-failures entries. Cases that passed (every repeat) are left out.
 */
export function classify(run: RunRecord, earlier: RunRecord[], known: KnownFailure[], now = new Date()): Classified[] {
  const byCase = new Map<string, CaseRecord[]>();
  for (const c of run.cases) byCase.set(c.caseId, [...(byCase.get(c.caseId) ?? []), c]);
  const out: Classified[] = [];
  for (const [caseId, repeats] of byCase) {
    const bad = repeats.filter((c) => BAD.has(c.status));
    const flakyHere = repeats.some((c) => c.status === 'flaky') || (bad.length > 0 && bad.length < repeats.length);
    if (!bad.length && !flakyHere) continue;
    const worst = bad.find((c) => c.status === 'error') ?? bad.find((c) => c.status === 'failed') ?? bad[0] ?? repeats.find((c) => c.status === 'flaky')!;
    const base = { caseId, scenario: worst.scenario, variant: worst.variant, status: worst.status, errorKind: worst.errorKind, errorMessage: worst.errorMessage };
    const entry = knownEntryFor(known, caseId, worst.errorMessage ?? '');
    if (entry) {
      const expired = entry.until !== undefined && new Date(`${entry.until}T23:59:59Z`) < now;
      out.push({ ...base, known: entry, class: expired ? 'known-expired' : 'known', why: `${expired ? 'matched a known failure that expired on ' + entry.until : 'matches a known failure'}: ${entry.bug}` });
      continue;
    }
    if (flakyHere) {
      const why = repeats.some((c) => c.status === 'flaky') ? 'passed on a retry in this run' : `${repeats.length - bad.length} of ${repeats.length} repeats passed in this run`;
      out.push({ ...base, class: 'flaky', why });
      continue;
    }
    // A pass on the same commit, the same inputs and the same systems: the same test of the same thing.
    const sameCommit = earlier.filter((r) => r.commit === run.commit && r.commit !== 'unknown').flatMap((r) => r.cases.filter((c) => c.caseId === caseId && sameSystems(run, worst, r, c)).map((c) => ({ r, c })));
    const passedSameCommit = sameCommit.find(({ c }) => c.status === 'passed' || c.status === 'flaky');
    if (passedSameCommit) {
      out.push({ ...base, class: 'flaky', why: `passed in run ${passedSameCommit.r.runId} on the same commit ${run.commit.slice(0, 12)}${Object.keys(run.inputs ?? {}).length ? ' and inputs' : ''}` });
      continue;
    }
    const last = earlier.map((r) => ({ r, cs: r.cases.filter((c) => c.caseId === caseId && c.status !== 'skipped') })).find(({ cs }) => cs.length > 0);
    if (!last) out.push({ ...base, class: 'new', why: 'no earlier run had this case' });
    else if (last.cs.some((c) => BAD.has(c.status))) out.push({ ...base, class: 'still-failing', why: `failed in run ${last.r.runId} (${last.r.commit.slice(0, 12)}) too` });
    else out.push({ ...base, class: 'new', why: `passed in run ${last.r.runId} (${last.r.commit.slice(0, 12)})` });
  }
  return out;
}
