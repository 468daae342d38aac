// The run history: the classifier on constructed histories (new, still failing, flaky three ways, known, expired), the
// two stores (SQLite, a real PostgreSQL) keeping runs as recorded, and `fleetlab gate`'s verdicts and exit codes.
import { execa } from 'execa';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestPostgres } from '../testing/postgres.ts';
import type { CaseResult } from '../runner/results.ts';
import { DEFAULT_POLICY, verdict } from './gate.ts';
import { type CaseRecord, classify, type RunRecord, runRecord } from './history.ts';
import { PostgresHistory } from './history-postgres.ts';
import { SqliteHistory } from './history-sqlite.ts';
import { loadKnownFailures } from './known-failures.ts';

const root = join(import.meta.dirname, '../..');
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const SMOKE = 'scenarios/smoke.ts::smoke[x86_64-direct]';
const MESH = 'scenarios/mesh.ts::mesh[raspi3b]';

const kase = (caseId: string, status: CaseRecord['status'], extra: Partial<CaseRecord> = {}): CaseRecord => ({
  caseId,
  repeat: 1,
  scenario: caseId.split('::')[1]!.split('[')[0]!,
  variant: caseId.split('[')[1]!.replace(']', ''),
  status,
  durationMs: 1000,
  attempts: 1,
  properties: {},
  machines: [{ role: 'main', profile: 'x86_64-direct' }],
  ...(status === 'failed' ? { errorKind: 'test-failure', errorMessage: 'Command on main was expected to succeed' } : {}),
  ...extra,
});
let n = 0;
const run = (commit: string, cases: CaseRecord[], extra: Partial<RunRecord> = {}): RunRecord => ({
  runId: `run-${++n}`,
  startedAt: new Date(Date.UTC(2026, 11, 1, 0, n)).toISOString(),
  commit,
  durationMs: 60_000,
  exitCode: cases.every((c) => c.status === 'passed') ? 0 : 1,
  outputDir: `/reports/run-${n}`,
  cases,
  ...extra,
});

describe('classify', () => {
  it('a failure that passed last time is new; one that failed last time too is still failing; a never-seen one is new', () => {
    const older = run('aaa', [kase(SMOKE, 'passed'), kase(MESH, 'failed')]);
    const last = run('bbb', [kase(SMOKE, 'passed'), kase(MESH, 'failed')]);
    const now = run('ccc', [kase(SMOKE, 'failed'), kase(MESH, 'failed'), kase('scenarios/new.ts::new[x86_64-uefi]', 'failed'), kase('scenarios/ok.ts::ok[x86_64-uefi]', 'passed')]);
    const c = classify(now, [last, older], []);
    expect(c.map((x) => [x.caseId, x.class])).toEqual([
      [SMOKE, 'new'],
      [MESH, 'still-failing'],
      ['scenarios/new.ts::new[x86_64-uefi]', 'new'],
    ]);
    expect(c[0]!.why).toBe(`passed in run ${last.runId} (bbb)`);
    expect(c[1]!.why).toBe(`failed in run ${last.runId} (bbb) too`);
    expect(c[2]!.why).toBe('no earlier run had this case');
  });

  it('flaky: a pass on a retry, repeats that disagree, or a pass on the same commit earlier', () => {
    const earlier = run('same', [kase(MESH, 'passed')]);
    const now = run('same', [
      kase(SMOKE, 'flaky', { attempts: 2 }),
      kase('scenarios/r.ts::r[x86_64-uefi]', 'passed', { repeat: 1 }),
      kase('scenarios/r.ts::r[x86_64-uefi]', 'failed', { repeat: 2 }),
      kase('scenarios/r.ts::r[x86_64-uefi]', 'passed', { repeat: 3 }),
      kase(MESH, 'failed'),
    ]);
    const c = classify(now, [earlier], []);
    expect(c.map((x) => [x.caseId, x.class, x.why])).toEqual([
      [SMOKE, 'flaky', 'passed on a retry in this run'],
      ['scenarios/r.ts::r[x86_64-uefi]', 'flaky', '2 of 3 repeats passed in this run'],
      [MESH, 'flaky', `passed in run ${earlier.runId} on the same commit same`],
    ]);
  });

  it('a pass on the same commit with other inputs or another system is no flake: the thing under test changed', () => {
    const sys = (toplevel: string) => ({ machines: [{ role: 'main', profile: 'x86_64-direct', system: { toplevel } }] });
    const a = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-main-1';
    const b = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-main-1';
    const build1 = run('same', [kase(MESH, 'passed', sys(a))], { inputs: { build: '1' } });
    // Other inputs (tonight's build): the failure is new.
    expect(classify(run('same', [kase(MESH, 'failed', sys(a))], { inputs: { build: '2' } }), [build1], []).map((x) => x.class)).toEqual(['new']);
    // The same inputs but another system at the case's end: new as well.
    expect(classify(run('same', [kase(MESH, 'failed', sys(b))], { inputs: { build: '1' } }), [build1], []).map((x) => x.class)).toEqual(['new']);
    // The same inputs and system: a flake.
    expect(classify(run('same', [kase(MESH, 'failed', sys(a))], { inputs: { build: '1' } }), [build1], []).map((x) => [x.class, x.why])).toEqual([['flaky', `passed in run ${build1.runId} on the same commit same and inputs`]]);
  });

  it('known: a matching entry (case glob, error pattern); an expired one is known-expired; a non-matching error is not known', () => {
    const known = [
      { case: 'scenarios/mesh.ts::mesh[*]', error: 'expected to succeed', bug: 'FLEET-231', until: '2026-12-31' },
      { case: 'scenarios/smoke.ts::*', bug: 'FLEET-9', until: '2026-11-30' },
      { case: 'scenarios/x.ts::x[*]', error: 'kernel panic', bug: 'FLEET-1' },
    ];
    const now = run('ddd', [kase(MESH, 'failed'), kase(SMOKE, 'failed'), kase('scenarios/x.ts::x[x86_64-uefi]', 'failed')]);
    const c = classify(now, [], known, new Date('2026-12-06T12:00:00Z'));
    expect(c.map((x) => [x.caseId, x.class, x.known?.bug])).toEqual([
      [MESH, 'known', 'FLEET-231'],
      [SMOKE, 'known-expired', 'FLEET-9'],
      ['scenarios/x.ts::x[x86_64-uefi]', 'new', undefined],
    ]);
    expect(c[1]!.why).toBe('matched a known failure that expired on 2026-11-30: FLEET-9');
  });

  it("the gate's verdict: new and still-failing are fatal, known and flaky listed; infrastructure errors over the threshold are fatal", () => {
    const last = run('e1', [kase(SMOKE, 'passed'), kase(MESH, 'passed')]);
    const now = run('e2', [kase(SMOKE, 'failed'), kase(MESH, 'error', { errorKind: 'infrastructure', errorMessage: 'QEMU exited unexpectedly' })]);
    const v = verdict(now, classify(now, [last], []), DEFAULT_POLICY);
    expect(v.pass).toBe(false);
    expect(v.fatal).toEqual(['1 new failure', '1 infrastructure error (at most 0 tolerated)']);
    expect(v.text).toMatch(/^fleetlab gate: FAIL — run run-\d+ \(commit e2, /);
    expect(v.text).toMatch(/ {2}NEW {12}smoke \[x86_64-direct\] \(failed\): passed in run run-\d+ \(e1\) — test-failure: Command on main was expected to succeed/);
    const lenient = verdict(now, classify(now, [last], []), { ...DEFAULT_POLICY, failOn: ['still-failing'], maxInfrastructureErrors: 1 });
    expect(lenient.pass).toBe(true);
    expect(lenient.text).toMatch(/nothing fatal/);
  });
});

describe('runRecord', () => {
  it("keeps each repeat under the case's id, the last try's error, properties and machines", () => {
    const result = (index: number, status: CaseResult['status']): CaseResult => ({
      id: `${SMOKE}#${index}`, file: 'scenarios/smoke.ts', scenario: 'smoke', variant: 'x86_64-direct', tags: [], status, durationMs: 1234.5,
      repeat: { index, of: 2, caseId: SMOKE },
      attempts: [{ attempt: 1, status: status === 'flaky' ? 'passed' : status as 'passed', startedAt: '', durationMs: 1, steps: [], artifacts: [], output: [], properties: { convergenceMs: '812' },
        machines: [{ role: 'main', name: 'main', profile: 'x86_64-direct', logPath: '/x' }], error: status === 'failed' ? { kind: 'test-failure', type: 'TestFailure', message: 'boom' } : undefined }],
    });
    const r = runRecord({ runId: 'r1', outputDir: '/o', cases: [], workers: 1, startedAt: '2026-12-06T10:00:00Z' }, { results: [result(1, 'passed'), result(2, 'failed')], durationMs: 99.6, exitCode: 1, interrupted: false }, 'abc');
    expect(r).toEqual({ runId: 'r1', startedAt: '2026-12-06T10:00:00Z', commit: 'abc', durationMs: 100, exitCode: 1, outputDir: '/o', inputs: {}, systems: {}, cases: [
      { caseId: SMOKE, repeat: 1, scenario: 'smoke', variant: 'x86_64-direct', status: 'passed', durationMs: 1235, attempts: 1, errorKind: undefined, errorMessage: undefined, properties: { convergenceMs: '812' }, machines: [{ role: 'main', profile: 'x86_64-direct' }] },
      { caseId: SMOKE, repeat: 2, scenario: 'smoke', variant: 'x86_64-direct', status: 'failed', durationMs: 1235, attempts: 1, errorKind: 'test-failure', errorMessage: 'boom', properties: { convergenceMs: '812' }, machines: [{ role: 'main', profile: 'x86_64-direct' }] },
    ] });
  });
});

/** Records three runs, reads them back newest first, and re-records one (replaced, not doubled). */
async function roundTrip(store: SqliteHistory | PostgresHistory): Promise<void> {
  const top = `/nix/store/${'a'.repeat(32)}-nixos-system-main-26.05`;
  const a = run('c1', [kase(SMOKE, 'passed', { properties: { bootMs: '5100' }, machines: [{ role: 'main', profile: 'x86_64-direct', system: { toplevel: top } }] })], { inputs: { build: '/nix/store/x-build' }, systems: { [top]: [`/nix/store/${'b'.repeat(32)}-hello-2.12`, top] } });
  const b = run('c2', [kase(SMOKE, 'failed'), kase(MESH, 'flaky', { attempts: 2, repeat: 1 }), kase(MESH, 'passed', { repeat: 2 })]);
  const c = run('c3', [kase(SMOKE, 'passed')]);
  for (const r of [a, b, c]) await store.record(r);
  // As stored: cases by id and repeat, undefined fields absent.
  // Inputs come back as {} when none were given; systems are read apart (systemContents).
  const strip = (r: RunRecord) => ({ ...r, inputs: r.inputs ?? {}, systems: undefined, cases: r.cases.map((k) => JSON.parse(JSON.stringify(k)) as CaseRecord).sort((x, y) => x.caseId.localeCompare(y.caseId) || x.repeat - y.repeat) });
  expect(await store.recentRuns(2)).toEqual([c, b].map(strip));
  await store.record({ ...b, exitCode: 3, cases: [kase(SMOKE, 'error', { errorKind: 'infrastructure', errorMessage: 'QEMU died' })] });
  const again = await store.recentRuns(10);
  expect(again.map((r) => r.runId)).toEqual([c.runId, b.runId, a.runId]);
  expect(again[1]!.exitCode).toBe(3);
  expect(again[1]!.cases.map((k) => `${k.caseId} ${k.status} ${k.errorMessage}`)).toEqual([`${SMOKE} error QEMU died`]);
  expect(again[2]!.cases[0]!.properties).toEqual({ bootMs: '5100' });
  expect(again[2]!.inputs).toEqual({ build: '/nix/store/x-build' });
  expect(again[2]!.cases[0]!.machines[0]!.system).toEqual({ toplevel: top });
  expect(await store.systemContents([top, '/nix/store/unknown'])).toEqual({ [top]: [`/nix/store/${'b'.repeat(32)}-hello-2.12`, top] });
  await store.forget([a.runId, 'no-such-run']);
  expect((await store.recentRuns(10)).map((r) => r.runId)).toEqual([c.runId, b.runId]);
}

describe('history stores', () => {
  let pg: TestPostgres | undefined;
  beforeAll(async () => {
    pg = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await pg?.stop();
  });

  it('SQLite keeps runs as recorded, newest first', async () => {
    const store = new SqliteHistory(join(await mkdtemp(join(tmpdir(), 'fleetlab-history-')), 'history.sqlite'));
    try {
      await roundTrip(store);
    } finally {
      await store.close();
    }
  });

  it('a SQLite history made before runs had inputs gets the column, its runs read with none', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'fleetlab-history-old-')), 'history.sqlite');
    const { DatabaseSync } = await import('node:sqlite');
    const old = new DatabaseSync(file);
    old.exec("CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, commit_id TEXT NOT NULL, duration_ms INTEGER NOT NULL, exit_code INTEGER NOT NULL, output_dir TEXT NOT NULL); INSERT INTO runs VALUES ('old-run', '2026-12-01T00:00:00Z', 'abc', 1, 0, '/o');");
    old.close();
    const store = new SqliteHistory(file);
    try {
      await store.record(run('def', [kase(SMOKE, 'passed')], { inputs: { build: '2' } }));
      expect((await store.recentRuns(5)).map((r) => [r.runId, r.inputs])).toEqual([[expect.stringMatching(/^run-/), { build: '2' }], ['old-run', {}]]);
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL keeps runs as recorded, newest first', async () => {
    const store = await PostgresHistory.connect(pg!.url);
    try {
      await roundTrip(store);
    } finally {
      await store.close();
    }
  }, 60_000);
});

describe('fleetlab gate', () => {
  const cli = (args: string[], cwd: string) => execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'gate', ...args], { cwd, reject: false, env: { NO_COLOR: '1', FLEETLAB_HISTORY: '' } });

  it('fails on a new failure, passes when the known-failures file lists it, fails again when the entry expired; says what is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-gate-'));
    const db = join(dir, 'history.sqlite');
    const store = new SqliteHistory(db);
    const g1 = run('g1', [kase(SMOKE, 'passed')]);
    await store.record(g1);
    await store.record(run('g2', [kase(SMOKE, 'passed')]));
    const bad = run('g3', [kase(SMOKE, 'passed'), kase('scenarios/failing.ts::failing[x86_64-direct]', 'failed', { errorMessage: 'the fixture fails on purpose' })]);
    await store.record(bad);
    await store.close();

    const r1 = await cli(['--history', db], dir);
    expect(r1.exitCode, r1.stderr).toBe(1);
    expect(r1.stdout).toMatch(new RegExp(`^fleetlab gate: FAIL — run ${bad.runId} \\(commit g3`));
    expect(r1.stdout).toMatch(/NEW {12}failing \[x86_64-direct\] \(failed\): no earlier run had this case — test-failure: the fixture fails on purpose/);
    expect(r1.stdout).toMatch(/fatal: 1 new failure/);

    await writeFile(join(dir, 'known-failures.json'), JSON.stringify({ known: [{ case: 'scenarios/failing.ts::*', error: 'on purpose', bug: 'FLEET-42', until: '2099-12-31' }] }));
    const r2 = await cli(['--history', db], dir);
    expect(r2.exitCode, r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/^fleetlab gate: PASS/);
    expect(r2.stdout).toMatch(/KNOWN {10}failing \[x86_64-direct\] \(failed\): matches a known failure: FLEET-42/);

    await writeFile(join(dir, 'expired.json'), JSON.stringify({ known: [{ case: 'scenarios/failing.ts::*', bug: 'FLEET-42', until: '2020-01-01' }] }));
    const r3 = await cli(['--history', db, '--known-failures', 'expired.json', '--json'], dir);
    expect(r3.exitCode).toBe(1);
    expect(JSON.parse(r3.stdout)).toMatchObject({ pass: false, runId: bad.runId, fatal: ['1 known-expired failure'], cases: [{ class: 'known-expired', bug: 'FLEET-42' }] });

    // An earlier run judged by --run: nothing failed there.
    const r4 = await cli(['--history', db, '--run', g1.runId], dir);
    expect(r4.exitCode, r4.stdout + r4.stderr).toBe(0);
    expect(r4.stdout).toMatch(new RegExp(`^fleetlab gate: PASS — run ${g1.runId} .*: 1 case, 0 not passed`));

    const none = await cli(['--history', join(dir, 'nothing.sqlite')], dir);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no run history at .*nothing\.sqlite: fleetlab run records each run there/);
    await writeFile(join(dir, 'broken.json'), JSON.stringify({ known: [{ case: 'x', bug: 'B', until: 'next week' }] }));
    const broken = await cli(['--history', db, '--known-failures', 'broken.json'], dir);
    expect(broken.exitCode).toBe(2);
    expect(broken.stderr).toMatch(/known-failures file .*broken\.json: known\.0\.until: a date, YYYY-MM-DD/);
    const policy = await cli(['--history', db, '--fail-on', 'new,bogus'], dir);
    expect(policy.exitCode).toBe(2);
    expect(policy.stderr).toMatch(/--fail-on "bogus": expected some of new, still-failing, flaky, known, known-expired/);
  }, 120_000);
});

describe('fleetlab run with a history', () => {
  const fixture = join(root, 'harness/history/fixtures/gate.ts');
  const fleetlab = (args: string[], cwd: string, env: Record<string, string> = {}) => execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd, reject: false, env: { NO_COLOR: '1', CI: '1', FLEETLAB_HISTORY: '', ...env } });

  it('records each run in reports/history.sqlite, marks a failure new in the console, JUnit and report.json, and the gate judges it; a known-failures file makes it known', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-history-run-'));
    for (const ms of ['120', '80']) expect((await fleetlab(['run', fixture], dir, { FLEETLAB_FIXTURE_MS: ms })).exitCode).toBe(0);
    const third = await fleetlab(['run', fixture, '--output', 'reports/third'], dir, { FLEETLAB_FIXTURE_FAIL: '1', FLEETLAB_FIXTURE_MS: '95' });
    expect(third.exitCode).toBe(1);
    expect(third.stdout).toMatch(/✗ failed \S+::wobbly\[x86_64-direct\] \([^)]*\)\n {4}history: new: passed in run \S+ \(unknown\)\n {4}the fixture fails on purpose/);
    const junit = await readFile(join(dir, 'reports/third/junit.xml'), 'utf8');
    expect(junit).toMatch(/<property name="history.class" value="new"\/>/);
    const report = JSON.parse(await readFile(join(dir, 'reports/third/report.json'), 'utf8')) as { results: Array<{ scenario: string; history?: { class: string } }> };
    expect(report.results.map((r) => [r.scenario, r.history?.class])).toEqual([['steady', undefined], ['wobbly', 'new']]);

    const gate = await fleetlab(['gate'], dir);
    expect(gate.exitCode, gate.stderr).toBe(1);
    expect(gate.stdout).toMatch(/NEW {12}wobbly \[x86_64-direct\] \(failed\): passed in run/);
    await writeFile(join(dir, 'known-failures.json'), JSON.stringify({ known: [{ case: '*::wobbly[*]', bug: 'FLEET-7' }] }));
    const known = await fleetlab(['gate'], dir);
    expect(known.exitCode, known.stdout).toBe(0);
    expect(known.stdout).toMatch(/KNOWN {10}wobbly \[x86_64-direct\] \(failed\): matches a known failure: FLEET-7/);
    // The next run classifies with the same file: the console says known, and the gate passes.
    const fourth = await fleetlab(['run', fixture], dir, { FLEETLAB_FIXTURE_FAIL: '1', FLEETLAB_FIXTURE_MS: '140' });
    expect(fourth.stdout).toMatch(/history: known \(FLEET-7\): matches a known failure: FLEET-7/);
    expect((await fleetlab(['gate'], dir)).exitCode).toBe(0);
    // report.html of the fourth run: each case's sparkline, its three earlier runs and this one, coloured by status.
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${join(dir, 'reports/latest/report.html')}`);
      const bars = (name: string) => page.locator(`.case:has(.name:text-is("${name} [x86_64-direct]")) .spark rect`).evaluateAll((rs) => rs.map((r) => r.getAttribute('class')));
      expect(await bars('wobbly')).toEqual(['s-passed', 's-passed', 's-failed', 's-failed']);
      expect(await bars('steady')).toEqual(['s-passed', 's-passed', 's-passed', 's-passed']);
      await expect(page.locator('.case:has(.name:text-is("wobbly [x86_64-direct]")) .spark rect title').last().textContent()).resolves.toMatch(/\(this run\): failed, /);
      await expect(page.locator('.case:has(.name:text-is("wobbly [x86_64-direct]")) .hist').textContent()).resolves.toBe('known');
      // The steady case's settleMs over the four runs, this run's point marked.
      const steady = page.locator('.case:has(.name:text-is("steady [x86_64-direct]"))');
      await steady.locator('.head').click();
      const trend = steady.locator('svg.trend[data-property="settleMs"]');
      await expect(trend.locator('circle title').allTextContents()).resolves.toEqual([expect.stringMatching(/: settleMs = 120$/), expect.stringMatching(/: settleMs = 80$/), expect.stringMatching(/: settleMs = 95$/), expect.stringMatching(/\(this run\): settleMs = 140$/)]);
      await expect(trend.locator('circle.current').count()).resolves.toBe(1);
      await expect(steady.locator('.trend-box .dim').textContent()).resolves.toBe('settleMs: 140 (range 80–140)');
    } finally {
      await browser.close();
    }
    // A bad known-failures file stops the run before it starts, naming the field.
    await writeFile(join(dir, 'known-failures.json'), JSON.stringify({ known: [{ case: 'x' }] }));
    const refused = await fleetlab(['run', fixture], dir);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/known-failures file .*known-failures\.json: known\.0\.bug/);
  }, 120_000);
});

describe('fleetlab report merge with a history', () => {
  it("records the shards of one run as one run, the shards' own runs removed", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-history-merge-'));
    const db = join(dir, 'team.sqlite');
    const cli = (args: string[]) => execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd: dir, reject: false, env: { NO_COLOR: '1', CI: '1' } });
    const fixture = join(root, 'harness/history/fixtures/gate.ts');
    // Two shards: each a run of its own (as --shard K/N splits a run; its split of two cases may leave one empty).
    for (const [k, name] of [[1, 'steady'], [2, 'wobbly']] as const) expect((await cli(['run', fixture, '--grep', `^${name} `, '--output', `shard-${k}`, '--history', db])).exitCode).toBe(0);
    const read = async () => {
      const s = new SqliteHistory(db);
      try {
        return await s.recentRuns(10);
      } finally {
        await s.close();
      }
    };
    expect((await read()).map((r) => r.cases.length)).toEqual([1, 1]);
    const merged = await cli(['report', 'merge', 'shard-1', 'shard-2', '-o', 'all/junit.xml', '--history', db]);
    expect(merged.exitCode, merged.stderr).toBe(0);
    expect(merged.stdout).toMatch(/recorded as one run in the history .*team\.sqlite/);
    const runs = await read();
    expect(runs.map((r) => r.runId)).toEqual([expect.stringMatching(/^merged \S+ \+ \S+$/)]);
    expect(runs[0]!.cases.map((c) => `${c.scenario} ${c.status}`).sort()).toEqual(['steady passed', 'wobbly passed']);
    expect(runs[0]!.outputDir).toBe(join(dir, 'all'));
  }, 120_000);
});

describe('loadKnownFailures', () => {
  it('names the file and the field of a bad entry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-known-'));
    await writeFile(join(dir, 'k.json'), JSON.stringify({ known: [{ case: 'a', bug: 'B', error: '(' }] }));
    expect(() => loadKnownFailures(join(dir, 'k.json'))).toThrow(/k\.json: known\.0\.error: not a valid regular expression/);
    await writeFile(join(dir, 'k.json'), JSON.stringify({ known: [{ case: 'a' }] }));
    expect(() => loadKnownFailures(join(dir, 'k.json'))).toThrow(/known\.0\.bug: /);
    expect(() => loadKnownFailures(join(dir, 'none.json'))).toThrow(/cannot be read \(ENOENT\)/);
  });
});
