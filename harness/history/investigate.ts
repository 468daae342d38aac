// fleetlab investigate <case>: the case's last passing run and the first failing one after it, from the history, and
// what differs between them: the commits and the git log of the scenario's code between them, each machine's profile,
// image and NixOS system, and the closure diff of the systems (store paths added, removed, changed version), in the
// form `nix store diff-closures` prints.
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { CaseRecord, HistoryStore, RunRecord } from './history.ts';

/** A case's record in one run. */
export interface CaseInRun {
  run: RunRecord;
  record: CaseRecord;
}

/** What changed between the last good and the first bad run of a case. */
export interface Investigation {
  caseId: string;
  lastGood?: CaseInRun;
  firstBad: CaseInRun;
  /** Runs of the case in the history, oldest first, as "passed"/"failed"/…. */
  history: Array<{ runId: string; status: string }>;
  /** `git log --oneline good..bad -- <scenario folder>`: undefined when not a repository or the same commit. */
  gitLog?: string[];
  machines: MachineDiff[];
}

export interface MachineDiff {
  role: string;
  profile: { good?: string; bad: string };
  toplevel: { good?: string; bad?: string };
  image: { good?: string; bad?: string };
  /** Closure (or image package) changes, nix store diff-closures' lines; undefined when a side's contents are unknown. */
  closure?: string[];
  /** Why there is no closure diff. */
  closureMissing?: string;
}

const GOOD = new Set(['passed', 'flaky']);
const BAD = new Set(['failed', 'error']);

/** The case ids of `runs` that `pattern` names: the id itself, or every id containing it. */
export function matchCase(runs: RunRecord[], pattern: string): string {
  const ids = [...new Set(runs.flatMap((r) => r.cases.map((c) => c.caseId)))];
  if (ids.includes(pattern)) return pattern;
  const hits = ids.filter((id) => id.includes(pattern));
  if (hits.length === 1) return hits[0]!;
  if (!hits.length) throw new ConfigurationError(`investigate: no case of the history's last ${runs.length} runs matches "${pattern}"${ids.length ? `; it has: ${ids.slice(0, 12).join(', ')}${ids.length > 12 ? ', …' : ''}` : ''}`);
  throw new ConfigurationError(`investigate: "${pattern}" matches ${hits.length} cases; name one: ${hits.join(', ')}`);
}

/**
 * The last good and first bad runs of `caseId` in `runs` (newest first, as recentRuns gives them): the latest change
 * from a pass to a failure. Null when the case never failed after passing (with why).
 */
export function lastGoodFirstBad(runs: RunRecord[], caseId: string): { lastGood?: CaseInRun; firstBad: CaseInRun } | { none: string } {
  const seen: CaseInRun[] = [];
  for (const run of [...runs].reverse()) {
    // Repeats: the run's worst.
    const recs = run.cases.filter((c) => c.caseId === caseId);
    if (!recs.length) continue;
    seen.push({ run, record: recs.find((c) => BAD.has(c.status)) ?? recs[0]! });
  }
  if (!seen.length) return { none: `no run of the history has the case ${caseId}` };
  // From the newest back: the latest failure, then the start of its streak, then the pass before it.
  let i = seen.length - 1;
  while (i >= 0 && !BAD.has(seen[i]!.record.status)) i--;
  if (i < 0) return { none: `${caseId} did not fail in the ${seen.length} run(s) the history has of it` };
  while (i > 0 && !GOOD.has(seen[i - 1]!.record.status)) i--;
  // Skipped or interrupted runs between are neither good nor bad: the first bad is the first failure of the streak.
  let first = i;
  while (!BAD.has(seen[first]!.record.status)) first++;
  return { lastGood: i > 0 ? seen[i - 1] : undefined, firstBad: seen[first]! };
}

/** Investigates `pattern` over the last `window` runs of `store`; `cwd` is where the runs started (case ids' files are relative to it). */
export async function investigate(store: HistoryStore, pattern: string, opts: { window?: number; cwd?: string } = {}): Promise<Investigation> {
  const runs = await store.recentRuns(opts.window ?? 100);
  if (!runs.length) throw new ConfigurationError(`investigate: the history ${store.where} has no runs`);
  const caseId = matchCase(runs, pattern);
  const found = lastGoodFirstBad(runs, caseId);
  if ('none' in found) throw new ConfigurationError(`investigate: ${found.none}; nothing to compare`);
  const { lastGood, firstBad } = found;
  const ids = new Set<string>();
  for (const c of [lastGood, firstBad]) for (const m of c?.record.machines ?? []) for (const id of [m.system?.toplevel, m.system?.image]) if (id) ids.add(id);
  const contents = await store.systemContents([...ids]);
  const machines = firstBad.record.machines.map((bad): MachineDiff => {
    const good = lastGood?.record.machines.find((m) => m.role === bad.role);
    const d: MachineDiff = {
      role: bad.role,
      profile: { good: good?.profile, bad: bad.profile },
      toplevel: { good: good?.system?.toplevel, bad: bad.system?.toplevel },
      image: { good: good?.system?.image, bad: bad.system?.image },
    };
    const side = (s: typeof bad.system) => (s?.toplevel && contents[s.toplevel] ? [...contents[s.toplevel]!, ...(s.image ? (contents[s.image] ?? []) : [])] : s?.image ? contents[s.image] : undefined);
    const a = side(good?.system);
    const b = side(bad.system);
    if (!good) d.closureMissing = 'no last good run';
    else if (!a || !b) d.closureMissing = `the ${!a ? 'last good' : 'first bad'} run did not record what its system holds${!(a ? bad : good)?.system ? ' (no system read: run with a history, the machine up at the case\'s end)' : ''}`;
    else d.closure = diffClosures(a, b);
    return d;
  });
  const file = firstBad.record.caseId.split('::')[0]!;
  return {
    caseId,
    lastGood,
    firstBad,
    history: runs
      .flatMap((r) => r.cases.filter((c) => c.caseId === caseId).slice(0, 1).map((c) => ({ runId: r.runId, status: c.status })))
      .reverse(),
    gitLog: lastGood ? gitLogBetween(lastGood.run.commit, firstBad.run.commit, file, opts.cwd ?? process.cwd()) : undefined,
    machines,
  };
}

/** `git log --oneline a..b -- <the scenario's folder>`, or undefined (same commit, unknown commits, no repository). */
function gitLogBetween(a: string, b: string, file: string, cwd: string): string[] | undefined {
  if (a === b || a === 'unknown' || b === 'unknown') return undefined;
  try {
    const folder = dirname(resolve(cwd, file));
    const out = execFileSync('git', ['log', '--oneline', '--no-decorate', `${a}..${b}`, '--', '.'], { cwd: folder, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** "name" and "version" of a store path (/nix/store/<hash>-<name>-<version>) or a package entry ("<name>-<version>"), as Nix splits them: the version starts at the first dash followed by a digit. */
export function splitName(entry: string): { name: string; version: string; hash?: string } {
  const base = entry.startsWith('/nix/store/') ? entry.slice('/nix/store/'.length) : entry;
  const hashed = /^([0-9a-z]{32})-(.*)$/.exec(base);
  const rest = hashed ? hashed[2]! : base;
  const at = rest.search(/-\d/);
  return { name: at < 0 ? rest : rest.slice(0, at), version: at < 0 ? '' : rest.slice(at + 1), hash: hashed?.[1] };
}

/**
 * The changes from closure `a` to closure `b`, a line per package name as `nix store diff-closures` prints them:
 * "hello: 2.10 → 2.12", "zlib: ∅ → 1.3" (added), "libfoo: 1.0 → ∅" (removed); a name whose versions are unchanged but
 * whose store paths differ (rebuilt against changed dependencies) is left out, as Nix leaves it out (it shows sizes).
 */
export function diffClosures(a: string[], b: string[]): string[] {
  const versions = (paths: string[]) => {
    const m = new Map<string, Set<string>>();
    for (const p of paths) {
      const { name, version } = splitName(p);
      if (!m.has(name)) m.set(name, new Set());
      m.get(name)!.add(version);
    }
    return m;
  };
  const va = versions(a);
  const vb = versions(b);
  const show = (s: Set<string> | undefined) => (s?.size ? [...s].sort().map((v) => v || 'ε').join(', ') : '∅');
  const lines: string[] = [];
  for (const name of [...new Set([...va.keys(), ...vb.keys()])].sort()) {
    const x = show(va.get(name));
    const y = show(vb.get(name));
    if (x !== y) lines.push(`${name}: ${x} → ${y}`);
  }
  return lines;
}

/** The investigation as the console prints it. */
export function formatInvestigation(inv: Investigation): string {
  const run = (c: CaseInRun) => `run ${c.run.runId} (${c.run.startedAt}, commit ${c.run.commit.slice(0, 12)})`;
  const out = [`investigate ${inv.caseId}`, `  history (oldest first): ${inv.history.map((h) => h.status).join(' ')}`];
  out.push(inv.lastGood ? `  last good: ${run(inv.lastGood)}: ${inv.lastGood.record.status}` : '  last good: none (the case failed each time the history has it)');
  // An assertion's first line is often only "Expected values to be strictly equal:": its next lines say which.
  const err = inv.firstBad.record.errorMessage?.split('\n').map((l) => l.trim()).filter((l) => l && l !== '+ actual - expected').slice(0, 3).join(' ').slice(0, 240);
  out.push(`  first bad: ${run(inv.firstBad)}: ${inv.firstBad.record.status}${err ? ` — ${inv.firstBad.record.errorKind ?? 'error'}: ${err}` : ''}`);
  if (inv.lastGood) {
    const [gi, bi] = [inv.lastGood.run.inputs ?? {}, inv.firstBad.run.inputs ?? {}];
    const names = [...new Set([...Object.keys(gi), ...Object.keys(bi)])].sort();
    const changed = names.filter((k) => gi[k] !== bi[k]);
    out.push('', 'inputs:');
    if (!names.length) out.push('  none in either run (fleetlab run --input NAME=VALUE gives a run its system under test)');
    else if (!changed.length) out.push(`  the same: ${names.map((k) => `${k}=${bi[k]}`).join(' ')}`);
    else for (const k of changed) out.push(`  ${k}: ${gi[k] ?? '∅'} → ${bi[k] ?? '∅'}`);
    out.push('', 'scenario code:');
    if (inv.lastGood.run.commit === 'unknown' && inv.firstBad.run.commit === 'unknown') out.push('  unknown: neither run started in a git repository');
    else if (inv.lastGood.run.commit === inv.firstBad.run.commit) out.push(`  the same commit (${inv.firstBad.run.commit.slice(0, 12)}): the code did not change`);
    else if (!inv.gitLog) out.push(`  ${inv.lastGood.run.commit.slice(0, 12)}..${inv.firstBad.run.commit.slice(0, 12)}: no git log here (not this repository, or a commit it lacks)`);
    else if (!inv.gitLog.length) out.push(`  ${inv.lastGood.run.commit.slice(0, 12)}..${inv.firstBad.run.commit.slice(0, 12)}: no commit touched the scenario's folder`);
    else for (const l of inv.gitLog) out.push(`  ${l}`);
  }
  for (const m of inv.machines) {
    out.push('', `machine ${m.role}:`);
    const pair = (what: string, p: { good?: string; bad?: string }) => out.push(p.good === p.bad ? `  ${what}: ${p.bad ?? 'unknown'} (unchanged)` : `  ${what}: ${p.good ?? 'unknown'} → ${p.bad ?? 'unknown'}`);
    pair('profile', m.profile);
    pair('image', m.image);
    pair('system', m.toplevel);
    if (m.closure) {
      out.push(`  closure diff (${m.closure.length} change${m.closure.length === 1 ? '' : 's'}):`);
      for (const l of m.closure) out.push(`    ${l}`);
    } else out.push(`  closure diff: none (${m.closureMissing})`);
  }
  return out.join('\n');
}
