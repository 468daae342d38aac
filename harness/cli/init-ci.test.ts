// The CI jobs `fleetlab init` writes, run as their CI would run them: each GitHub Actions matrix job and each GitLab
// parallel job runs its shard (its index from the CI's own variables), and the final job merges the shards into one
// junit.xml and report.html that hold every case of `fleetlab list`. The YAML is read with a YAML parser, the
// commands are the files' own (only `npx fleetlab` and the scenarios' path are pointed at this checkout).
import { execa } from 'execa';
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { initRepository } from './init-command.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');
const scenarios = join(root, 'harness/cli/fixtures/shards/');
let repo: string;
let cases: string[];

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'fleetlab-init-ci-'));
  await initRepository(repo);
  const list = await execa(process.execPath, [cli, 'list', scenarios], { cwd: root, env: { CI: '1', NO_COLOR: '1' } });
  // "file::scenario[variant]" as listed; JUnit names a case "scenario [variant]".
  cases = list.stdout.split('\n').map((l) => /\S+::(.+)\[(x86_64-direct)\]$/.exec(l)).filter((m) => !!m).map((m) => `${m![1]} [${m![2]}]`);
  expect(cases).toHaveLength(6);
}, 60_000);
afterAll(() => rm(repo, { recursive: true, force: true }));

/** Runs one of the workflow's shell lines in the repository, as its CI would (bash), with `npx fleetlab` this checkout's CLI. */
const sh = (line: string, env: Record<string, string> = {}) =>
  execa('bash', ['-euc', line.replaceAll('npx fleetlab', `${process.execPath} ${cli}`).replaceAll(' scenarios/ ', ` ${scenarios} `)], { cwd: repo, reject: false, timeout: 120_000, env: { CI: 'true', NO_COLOR: '1', FLEETLAB_HISTORY: 'none', ...env } });

/** The test cases of a merged junit.xml, as "scenario [variant]". */
async function merged(junit: string): Promise<string[]> {
  const xml = await readFile(junit, 'utf8');
  return [...xml.matchAll(/<testcase [^>]*name="([^"]+)"/g)].map((m) => m[1]!.replace(/&quot;/g, '"'));
}

describe('fleetlab init: sharded CI jobs', () => {
  it('GitHub Actions: one matrix job per shard (index from strategy.job-index/job-total), then a job that merges them', async () => {
    const wf = parse(await readFile(join(repo, '.github/workflows/fleetlab.yml'), 'utf8'));
    const job = wf.jobs.scenarios;
    const shards: number[] = job.strategy.matrix.shard;
    expect(shards.length).toBeGreaterThanOrEqual(2);
    expect(job.strategy['fail-fast']).toBe(false);
    const run = job.steps.map((s: { run?: string }) => s.run).find((r?: string) => r?.includes('--shard'))!;
    expect(run).toContain('${{ strategy.job-index }}');
    for (const [index, shard] of shards.entries()) {
      const line = run.replaceAll('${{ strategy.job-index }}', String(index)).replaceAll('${{ strategy.job-total }}', String(shards.length)).replaceAll('${{ matrix.shard }}', String(shard));
      const r = await sh(line);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      // upload-artifact fleetlab-shard-N, then download-artifact (pattern) into reports/shards/<artifact name>/.
      const upload = job.steps.find((s: { uses?: string }) => s.uses?.startsWith('actions/upload-artifact')).with;
      const name = upload.name.replaceAll('${{ matrix.shard }}', String(shard));
      await mkdir(join(repo, 'reports/shards'), { recursive: true });
      await cp(join(repo, upload.path.replaceAll('${{ matrix.shard }}', String(shard))), join(repo, 'reports/shards', name), { recursive: true });
    }
    const report = wf.jobs.report;
    expect(report.needs).toBe('scenarios');
    expect(report.if).toBe('always()');
    const download = report.steps.find((s: { uses?: string }) => s.uses?.startsWith('actions/download-artifact')).with;
    expect(download.pattern).toBe('fleetlab-shard-*');
    expect(download.path).toBe('reports/shards');
    const merge = report.steps.map((s: { run?: string }) => s.run).find((r?: string) => r?.includes('report merge'))!;
    const r = await sh(merge);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect((await merged(join(repo, 'reports/all/junit.xml'))).sort()).toEqual([...cases].sort());
    expect(await readdir(join(repo, 'reports/all'))).toContain('report.html');
  }, 300_000);

  it('GitLab: a parallel job (shard from CI_NODE_INDEX/CI_NODE_TOTAL), then fleetlab-report merges the shards', async () => {
    await rm(join(repo, 'reports'), { recursive: true, force: true });
    const ci = parse(await readFile(join(repo, 'ci/fleetlab.gitlab-ci.yml'), 'utf8'));
    const n: number = ci.fleetlab.parallel;
    expect(n).toBeGreaterThanOrEqual(2);
    for (let k = 1; k <= n; k++) {
      for (const line of ci.fleetlab.script) {
        const r = await sh(line, { CI_NODE_INDEX: String(k), CI_NODE_TOTAL: String(n) });
        expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      }
    }
    expect(ci['fleetlab-report'].needs).toEqual(['fleetlab']);
    expect(ci['fleetlab-report'].when).toBe('always');
    for (const line of ci['fleetlab-report'].script) {
      const r = await sh(line);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    }
    expect((await merged(join(repo, 'reports/all/junit.xml'))).sort()).toEqual([...cases].sort());
  }, 300_000);

  it('a shard no case falls in passes and reports none; the shards together hold every case once', async () => {
    await rm(join(repo, 'reports'), { recursive: true, force: true });
    let empty = 0;
    for (let k = 1; k <= 7; k++) {
      const r = await sh(`npx fleetlab run scenarios/ --shard ${k}/7 -o reports/s${k}`);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      if (/shard \d\/7 has none of the 6 case\(s\) planned; it reports no test/.test(r.stderr)) empty++;
    }
    expect(empty).toBeGreaterThan(0);
    const r = await sh('npx fleetlab report merge reports/s* -o reports/all/junit.xml --history none');
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect((await merged(join(repo, 'reports/all/junit.xml'))).sort()).toEqual([...cases].sort());
  }, 300_000);
});
