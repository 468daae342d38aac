// fleetlab investigate: the last good and first bad run of a case on constructed histories, the closure diff as
// `nix store diff-closures` prints it, and an investigation of two real runs of a scenario (in a git repository of its
// own, changed between the runs) whose systems differ by one package: the diff names that package and the git log the
// commit between the runs.
import { execa } from 'execa';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CaseRecord, RunRecord } from './history.ts';
import { SqliteHistory } from './history-sqlite.ts';
import { diffClosures, formatInvestigation, investigate, lastGoodFirstBad, splitName } from './investigate.ts';

const root = join(import.meta.dirname, '../..');
const CASE = 'scenarios/app.ts::app[x86_64-bios]';
let n = 0;
const run = (status: CaseRecord['status'], extra: { commit?: string; system?: { toplevel?: string; image?: string }; systems?: Record<string, string[]> } = {}): RunRecord => ({
  runId: `run-${++n}`,
  startedAt: new Date(Date.UTC(2026, 11, 1, 0, n)).toISOString(),
  commit: extra.commit ?? 'unknown',
  durationMs: 1000,
  exitCode: status === 'passed' ? 0 : 1,
  outputDir: `/reports/run-${n}`,
  cases: [{ caseId: CASE, repeat: 1, scenario: 'app', variant: 'x86_64-bios', status, durationMs: 900, attempts: 1, properties: {}, machines: [{ role: 'main', profile: 'x86_64-bios', ...(extra.system ? { system: extra.system } : {}) }], ...(status === 'failed' ? { errorKind: 'test-failure', errorMessage: 'the app did not answer' } : {}) }],
  systems: extra.systems,
});
/** Newest first, as recentRuns gives them. */
const newestFirst = (...runs: RunRecord[]) => [...runs].reverse();

describe('closure diff', () => {
  it('splits store paths and package entries as Nix does: the version starts at the first dash before a digit', () => {
    expect(splitName('/nix/store/0c7z4h5m8n9p1q2r3s4v5w6x7y8z9a0b-openssl-3.0.13-bin')).toEqual({ name: 'openssl', version: '3.0.13-bin', hash: '0c7z4h5m8n9p1q2r3s4v5w6x7y8z9a0b' });
    expect(splitName('/nix/store/0c7z4h5m8n9p1q2r3s4v5w6x7y8z9a0b-nixos-system-gw-26.05.1')).toMatchObject({ name: 'nixos-system-gw', version: '26.05.1' });
    expect(splitName('/nix/store/0c7z4h5m8n9p1q2r3s4v5w6x7y8z9a0b-etc')).toMatchObject({ name: 'etc', version: '' });
    expect(splitName('libssl3-3.0.11-1~deb12u2')).toEqual({ name: 'libssl3', version: '3.0.11-1~deb12u2', hash: undefined });
  });

  it('lists changed versions, additions and removals by name; a rebuild with the same version is left out', () => {
    const p = (h: string, rest: string) => `/nix/store/${h.repeat(32)}-${rest}`;
    const a = [p('a', 'hello-2.10'), p('b', 'zlib-1.3'), p('c', 'libfoo-1.0'), p('d', 'etc'), p('e', 'python3-3.11.9'), p('f', 'python3-3.12.4')];
    const b = [p('g', 'hello-2.12'), p('h', 'zlib-1.3'), p('i', 'etc'), p('j', 'curl-8.9.1'), p('k', 'python3-3.12.4')];
    expect(diffClosures(a, b)).toEqual(['curl: ∅ → 8.9.1', 'hello: 2.10 → 2.12', 'libfoo: 1.0 → ∅', 'python3: 3.11.9, 3.12.4 → 3.12.4']);
    expect(diffClosures(a, a)).toEqual([]);
  });
});

describe('last good, first bad', () => {
  it('is the latest change from a pass to a failure, skipped runs in between ignored', () => {
    const [r1, r2, r3, r4, r5, r6] = [run('passed'), run('failed'), run('passed'), run('skipped'), run('failed'), run('error')];
    const f = lastGoodFirstBad(newestFirst(r1!, r2!, r3!, r4!, r5!, r6!), CASE);
    expect('none' in f ? f.none : [f.lastGood?.run.runId, f.firstBad.run.runId]).toEqual([r3!.runId, r5!.runId]);
  });

  it('a case that always failed has no last good; one that never failed has nothing to investigate', () => {
    const always = lastGoodFirstBad(newestFirst(run('failed'), run('failed')), CASE);
    expect('none' in always ? always.none : always.lastGood).toBeUndefined();
    const fine = lastGoodFirstBad(newestFirst(run('passed'), run('flaky')), CASE);
    expect(fine).toEqual({ none: `${CASE} did not fail in the 2 run(s) the history has of it` });
  });

  it('reads the systems of both runs from the store and diffs their closures; an ambiguous case name is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-investigate-'));
    const store = new SqliteHistory(join(dir, 'h.sqlite'));
    const top = (v: string) => `/nix/store/${v.repeat(32)}-nixos-system-gw-26.05`;
    const img = 'testbed:x86_64-disk@0123456789abcdef';
    await store.record(run('passed', { system: { toplevel: top('a'), image: img }, systems: { [top('a')]: [`/nix/store/${'b'.repeat(32)}-hello-2.10`, top('a')], [img]: ['busybox-1:1.35.0-4'] } }));
    await store.record(run('failed', { system: { toplevel: top('c'), image: img }, systems: { [top('c')]: [`/nix/store/${'d'.repeat(32)}-hello-2.12`, top('c')] } }));
    const inv = await investigate(store, 'app');
    expect(inv.machines).toEqual([{ role: 'main', profile: { good: 'x86_64-bios', bad: 'x86_64-bios' }, toplevel: { good: top('a'), bad: top('c') }, image: { good: img, bad: img }, closure: ['hello: 2.10 → 2.12'] }]);
    const text = formatInvestigation(inv);
    expect(text).toContain('  unknown: neither run started in a git repository');
    expect(text).toContain(`  system: ${top('a')} → ${top('c')}`);
    expect(text).toContain('  closure diff (1 change):\n    hello: 2.10 → 2.12');
    await store.record({ ...run('passed'), cases: [{ ...run('passed').cases[0]!, caseId: 'scenarios/app.ts::app[x86_64-uefi]' }] });
    await expect(investigate(store, 'app')).rejects.toThrow(/"app" matches 2 cases; name one: /);
    await expect(investigate(store, 'nothing-like-it')).rejects.toThrow(/no case of the history's last 3 runs matches "nothing-like-it"/);
    await store.close();
  });
});

describe('fleetlab investigate on real runs', () => {
  const fleetlab = (args: string[], cwd: string) => execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd, reject: false, env: { NO_COLOR: '1', CI: '1', FLEETLAB_HISTORY: '' } });
  const git = (args: string[], cwd: string) => execa('git', ['-c', 'user.name=fleetlab test', '-c', 'user.email=test@fleetlab.invalid', ...args], { cwd });

  it('names the package that changed between the last good and the first bad system and the commit between them; the reruns pin the failure on the system', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-investigate-run-'));
    const fixture = await readFile(join(root, 'harness/history/fixtures/investigate.ts'), 'utf8');
    await git(['init', '-q', '-b', 'main'], dir);
    await writeFile(join(dir, 'greeter.ts'), fixture);
    await git(['add', 'greeter.ts'], dir);
    await git(['commit', '-q', '-m', 'greeter scenario'], dir);
    const good = await fleetlab(['run', 'greeter.ts', '--input', 'greeter=1.0'], dir);
    expect(good.exitCode, good.stdout + good.stderr).toBe(0);
    // The scenario's code changes (a comment), and the system under test gets greeter 1.1.
    await writeFile(join(dir, 'greeter.ts'), `// The nightly's greeter check.\n${fixture}`);
    await git(['commit', '-q', '-am', 'greeter: a comment on top'], dir);
    const bad = await fleetlab(['run', 'greeter.ts', '--input', 'greeter=1.1'], dir);
    expect(bad.exitCode, bad.stdout).toBe(1);
    expect(await readFile(join(dir, 'reports/latest/junit.xml'), 'utf8')).toContain('<property name="input.greeter" value="1.1"/>');

    const inv = await fleetlab(['investigate', 'greeter', '--rerun', '-o', 'reruns'], dir);
    expect(inv.exitCode, inv.stderr).toBe(0);
    const out = inv.stdout;
    expect(out).toContain('investigate greeter.ts::greeter greets[x86_64-bios]');
    expect(out).toContain('  history (oldest first): passed failed');
    expect(out).toMatch(/ {2}first bad: run \S+ \([^)]+, commit [0-9a-f]{12}\): failed — test-failure: Expected values to be strictly equal: \+ 'hello, flet' - 'hello, fleet'\n/);
    expect(out).toContain('\ninputs:\n  greeter: 1.0 → 1.1\n');
    expect(out).toMatch(/\nscenario code:\n {2}[0-9a-f]{7,} greeter: a comment on top\n/);
    expect(out).toMatch(/ {2}system: \/nix\/store\/[0-9a-z]{32}-nixos-system-testbed-26\.05\.1 → \/nix\/store\/[0-9a-z]{32}-nixos-system-testbed-26\.05\.1\n/);
    expect(out).toMatch(/ {2}image: testbed:x86_64@[0-9a-f]{16} \(unchanged\)/);
    // One package differs: the diff says exactly that.
    expect(out).toContain('  closure diff (1 change):\n    greeter: 1.0 → 1.1');
    // The reruns: greeter 1.0 with the new code passes, greeter 1.1 with the old code fails.
    expect(out).toMatch(/ {2}last good inputs \+ first bad code: passed \(code [0-9a-f]{12}, inputs greeter=1\.0\)\n {2}first bad inputs \+ last good code: failed \(code [0-9a-f]{12}, inputs greeter=1\.1\)\n/);
    expect(out).toContain('follows: system — the failure follows the system');
    expect(await readFile(join(dir, 'reruns/bad-inputs-good-code/junit.xml'), 'utf8')).toContain('<property name="input.greeter" value="1.1"/>');
    // The worktrees are gone.
    expect((await git(['worktree', 'list'], dir)).stdout.trim().split('\n')).toHaveLength(1);
    const json = JSON.parse((await fleetlab(['investigate', 'greeter', '--json'], dir)).stdout) as { machines: Array<{ closure: string[] }> };
    expect(json.machines[0]!.closure).toEqual(['greeter: 1.0 → 1.1']);
  }, 900_000);
});
