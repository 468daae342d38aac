// fleetlab report merge: the shards of one run (each a `fleetlab run --shard K/N` folder, or its junit.xml) into one
// junit.xml, and, when every shard has its report.json, one report.json and report.html beside it. The shards' paths
// are rebased from where they ran (a CI runner) to where their folders are now, and the merged page links into them.
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { CaseResult } from '../runner/results.ts';
import { writeHtmlReport } from './html-reporter.ts';
import { mergeJunit } from './merge-junit.ts';
import { caseRecord } from '../history/history.ts';
import { historyLocation, openHistory } from '../history/open-history.ts';

interface ShardReport {
  run?: { runId?: string; outputDir?: string; startedAt?: string; cases?: unknown[]; inputs?: Record<string, string> };
  summary?: { durationMs?: number; exitCode?: number; interrupted?: boolean };
  results?: CaseResult[];
  commit?: string;
  /** Contents of the systems its machines ran, by identity (json-reporter.ts). */
  systems?: Record<string, string[]>;
}

export interface MergeResult {
  suites: number;
  tests: number;
  /** The merged report.html, or why there is none. */
  html?: string;
  htmlSkipped?: string;
  /** The run history the merged run was recorded in. */
  history?: string;
}

/**
 * Merges `inputs` (run folders or their junit.xml files) into `out` (a junit.xml path) and its folder. With every
 * shard's report.json at hand, the merged run is recorded in the run history at `history` (a location as
 * historyLocation() takes it; "none" records nothing) as one run, the shards' own runs removed from it.
 */
export async function mergeReports(inputs: string[], out: string, opts: { history?: string } = {}): Promise<MergeResult> {
  const junits = inputs.map((i) => (existsSync(i) && statSync(i).isDirectory() ? join(i, 'junit.xml') : i));
  for (const j of junits) if (!existsSync(j)) throw new ConfigurationError(`report merge: ${j} does not exist; give run folders (reports/<run-id>) or their junit.xml files`, { details: { file: j } });
  const outDir = dirname(resolve(out));
  await mkdir(outDir, { recursive: true });
  const { suites, tests } = await mergeJunit(junits, out);
  const missing = junits.map((j) => join(dirname(j), 'report.json')).filter((f) => !existsSync(f));
  if (missing.length) return { suites, tests, htmlSkipped: `no report.json beside ${missing.join(', ')}` };

  const shards: ShardReport[] = [];
  const results: CaseResult[] = [];
  for (const j of junits) {
    const folder = dirname(resolve(j));
    const file = join(folder, 'report.json');
    let shard: ShardReport;
    try {
      shard = JSON.parse(await readFile(file, 'utf8')) as ShardReport;
    } catch (err) {
      throw new ConfigurationError(`report merge: ${file} is not a report.json fleetlab wrote: ${(err as Error).message}`, { details: { file } });
    }
    shards.push(shard);
    const from = shard.run?.outputDir;
    const rebase = (p: string) => (from && (p === from || p.startsWith(from + sep)) ? join(folder, relative(from, p)) : p);
    for (const r of shard.results ?? []) {
      results.push({
        ...r,
        attempts: r.attempts.map((a) => ({
          ...a,
          machines: a.machines.map((m) => ({ ...m, logPath: rebase(m.logPath) })),
          artifacts: a.artifacts.map((x) => ({ ...x, path: rebase(x.path) })),
        })),
      });
    }
  }
  const starts = shards.map((s) => s.run?.startedAt).filter((s): s is string => !!s).sort();
  const summary = {
    durationMs: Math.max(0, ...shards.map((s) => s.summary?.durationMs ?? 0)),
    exitCode: Math.max(0, ...shards.map((s) => s.summary?.exitCode ?? 0)),
    interrupted: shards.some((s) => s.summary?.interrupted),
  };
  const runId = `merged ${shards.map((s) => s.run?.runId ?? '?').join(' + ')}`;
  const planned = shards.reduce((n, s) => n + (s.run?.cases?.length ?? s.results?.length ?? 0), 0);
  await writeFile(join(outDir, 'report.json'), JSON.stringify({ run: { runId, outputDir: outDir, startedAt: starts[0] ?? '', shards: junits.map((j) => dirname(resolve(j))) }, summary, results }, null, 2) + '\n');
  const html = join(outDir, 'report.html');
  const commit = await shardCommit(junits[0]!);
  await writeHtmlReport(html, outDir, { runId, startedAt: starts[0] ?? '', commit, finished: shards.every((s) => !!s.summary), ...summary, planned, results }, { linkUp: true });
  const store = await openHistory(historyLocation(opts.history));
  if (store) {
    try {
      await store.forget(shards.map((s) => s.run?.runId).filter((id): id is string => !!id));
      await store.record({ runId, startedAt: starts[0] ?? '', commit: commit ?? 'unknown', durationMs: Math.round(summary.durationMs), exitCode: summary.exitCode, outputDir: outDir, inputs: shards[0]?.run?.inputs ?? {}, cases: results.map(caseRecord), systems: Object.assign({}, ...shards.map((s) => s.systems ?? {})) as Record<string, string[]> });
    } finally {
      await store.close();
    }
  }
  return { suites, tests, html, history: store?.where };
}

/** The commit the JUnit file of a shard names (its testsuites carry it as a property), if any. */
async function shardCommit(junit: string): Promise<string | undefined> {
  const m = /<property name="git\.commit" value="([0-9a-f]{7,40})/.exec(await readFile(junit, 'utf8'));
  return m?.[1];
}
