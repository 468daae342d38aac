// `fleetlab run` through the real CLI on fixture scenarios: JUnit parsed with an XML parser, exit codes, signals.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listProfiles } from '../qemu/profile-loader.ts';
import { processesMatching } from '../testing/processes.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');
const fixture = (f: string) => join(root, 'harness/runner/fixtures', f);
const fleetlab = (args: string[], opts: { timeout?: number } = {}) =>
  execa(process.execPath, [cli, ...args], { cwd: root, reject: false, timeout: opts.timeout ?? 300_000, env: { CI: '1', NO_COLOR: '1' } });
const parse = (xml: string) => new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['testsuite', 'testcase', 'property', 'flakyError', 'flakyFailure', 'rerunError', 'rerunFailure'].includes(n) }).parse(xml);

type Case = Record<string, unknown> & { name: string; classname: string; time: string };

describe('fleetlab run on outcome fixtures', () => {
  let out: string;
  let result: Awaited<ReturnType<typeof fleetlab>>;
  let cases: Map<string, Case>;
  let suite: Record<string, unknown>;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'fleetlab-run-'));
    result = await fleetlab(['run', fixture('outcomes.ts'), '--output', out, '--workers', '2', '--retries', '1']);
    const doc = parse(await readFile(join(out, 'junit.xml'), 'utf8'));
    suite = doc.testsuites.testsuite[0];
    cases = new Map((suite.testcase as Case[]).map((c) => [c.name, c]));
  }, 300_000);

  it('exits 1 when any case failed', () => {
    expect(result.exitCode, result.stdout + result.stderr).toBe(1);
  });

  it('has one suite for the file and one case per scenario × machine, with real times', () => {
    expect(suite.name).toBe('harness/runner/fixtures/outcomes.ts');
    expect(suite.tests).toBe('7');
    expect([...cases.keys()].sort()).toEqual(
      ['fails a command', 'fails an assertion', 'flaky', 'loses its machine', 'passes', 'skipped', 'times out'].map((n) => `${n} [x86_64-direct]`).sort(),
    );
    for (const c of cases.values()) expect(c.classname).toBe('harness/runner/fixtures/outcomes');
    expect(Number(cases.get('passes [x86_64-direct]')!.time)).toBeGreaterThan(1);
  });

  it('counts failures, errors and skips on the suite', () => {
    expect(suite).toMatchObject({ failures: '3', errors: '1', skipped: '1' });
  });

  it('carries machine, accelerator, QEMU version, host and commit as properties', () => {
    const props = Object.fromEntries(((suite.properties as { property: { name: string; value: string }[] }).property).map((p) => [p.name, p.value]));
    expect(props['machine.profile']).toBe('x86_64-direct');
    expect(props['machine.arch']).toBe('x86_64');
    expect(props['machine.accel']).toMatch(/^(tcg|kvm)$/);
    expect(props['qemu.version']).toMatch(/^\d+\.\d+/);
    expect(props.host).toBeTruthy();
    expect(props['git.commit']).toMatch(/^[0-9a-f]{40}$|^unknown$/);
  });

  it('a passing case has no failure and its system-out holds steps, console log and attachments', () => {
    const c = cases.get('passes [x86_64-direct]')!;
    expect(c.failure).toBeUndefined();
    expect(c.error).toBeUndefined();
    const so = String(c['system-out']);
    expect(so).toMatch(/✓ echo \(\d+\.\d+ s\)/);
    expect(so).toContain('Linux version');
    expect(so).toMatch(/\[\[ATTACHMENT\|\/.*vm\.log\]\]/);
  });

  it('a failed assertion is a <failure> with expected, actual and the scenario file location', () => {
    const f = cases.get('fails an assertion [x86_64-direct]')!.failure as Record<string, string>;
    expect(f.type).toBe('AssertionError');
    expect(f.message).toContain('the answer');
    expect(f.message).toContain('expected: 42');
    expect(f.message).toContain('actual: 41');
    expect(f.message).toMatch(/at \/.*fixtures\/outcomes\.ts:\d+:\d+/);
  });

  it('a failed command is a <failure> naming the command and its exit code', () => {
    const f = cases.get('fails a command [x86_64-direct]')!.failure as Record<string, string>;
    expect(f.type).toBe('CommandError');
    expect(f.message).toContain('exit 7');
    expect(f.message).toContain('exited with 7');
    expect(f.message).toContain('about-to-fail');
  });

  it('a machine killed from outside is an <error> (infrastructure), retried, with the earlier try as <rerunError>', () => {
    const c = cases.get('loses its machine [x86_64-direct]')!;
    const e = c.error as Record<string, string>;
    expect(e.message).toMatch(/QEMU exited unexpectedly/);
    expect(c.failure).toBeUndefined();
    expect((c.rerunError as unknown[]).length).toBe(1);
  });

  it('a scenario past its timeout is a <failure> naming the budget', () => {
    const f = cases.get('times out [x86_64-direct]')!.failure as Record<string, string>;
    // The command inside gets all of the scenario's time; the scenario's own budget is what expires, and is named.
    // The scenario and its running step share that budget: whichever wait notices first is the one quoted.
    expect(f.message).toMatch(/^Timed out after 20 s \(budget: scenario "times out"\) waiting for (scenario "times out"|step "wait forever") to finish\./);
    expect(f.message).toContain("To allow more time: raise the scenario's timeout, or pass --timeout-scale.");
  });

  it('a pass on the second try is a pass carrying <flakyError>', () => {
    const c = cases.get('flaky [x86_64-direct]')!;
    expect(c.failure).toBeUndefined();
    expect(c.error).toBeUndefined();
    expect((c.flakyError as unknown[]).length).toBe(1);
  });

  it('a skipped scenario is <skipped> with its reason', () => {
    const c = cases.get('skipped [x86_64-direct]')!;
    expect(c.skipped).toMatchObject({ message: 'not on this fleet' });
  });

  it('writes report.json and every machine log, and leaves no QEMU running', async () => {
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    expect(report.results).toHaveLength(7);
    expect(report.summary.exitCode).toBe(1);
    const passed = report.results.find((r: { scenario: string }) => r.scenario === 'passes');
    expect(await readFile(passed.attempts[0].machines[0].logPath, 'utf8')).toContain('Linux version');
    expect(processesMatching('process=fleetlab-vm')).toEqual([]);
  });
});

describe('fleetlab run exit codes and bad input', () => {
  it('exits 0 when all pass, counting a pass after a retry', async () => {
    const r = await fleetlab(['run', fixture('outcomes.ts'), '--grep', '^(passes|flaky) ', '--retries', '1', '--reporter', 'console', '--workers', '2']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 passed, 0 failed, 0 errors, 0 skipped \(1 flaky\)/);
  });

  it('exits 3 on infrastructure errors without test failures', async () => {
    const r = await fleetlab(['run', fixture('outcomes.ts'), '--grep', '^loses', '--reporter', 'console']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(3);
  });

  it('a malformed scenario file exits 2 naming the file', async () => {
    const r = await fleetlab(['run', fixture('malformed.ts')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('fixtures/malformed.ts failed to load');
  });

  it('an unknown machine exits 2 naming the scenario, the role and the profile', async () => {
    const r = await fleetlab(['run', fixture('unknown-machine.ts')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown-machine\.ts: scenario "lost", machine vm: Unknown machine profile "pdp-11"/);
  });

  it('a bad option exits 2 naming the option and what it expects', async () => {
    const bad = await fleetlab(['run', fixture('matrix.ts'), '--workers', '0']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--workers 0: expected a whole number >= 1');
    const shard = await fleetlab(['list', fixture('matrix.ts'), '--shard', '5/4']);
    expect(shard.exitCode).toBe(2);
    expect(shard.stderr).toContain('--shard "5/4"');
    const input = await fleetlab(['run', fixture('matrix.ts'), '--input', 'build']);
    expect(input.exitCode).toBe(2);
    expect(input.stderr).toContain('--input "build": expected NAME=VALUE');
    const twice = await fleetlab(['run', fixture('matrix.ts'), '--input', 'build=1', '--input', 'build=2']);
    expect(twice.exitCode).toBe(2);
    expect(twice.stderr).toContain('--input build is given twice ("1" and "2"): give it once.');
    const unknown = await fleetlab(['run', '--no-such-flag']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown argument/);
  });
});

describe('shards', () => {
  it('are disjoint and together cover the set', async () => {
    const all = (await fleetlab(['list', fixture('matrix.ts')])).stdout.trim().split('\n');
    expect(all).toHaveLength(12);
    const shards = await Promise.all([1, 2, 3].map(async (k) => (await fleetlab(['list', fixture('matrix.ts'), '--shard', `${k}/3`])).stdout.trim().split('\n').filter(Boolean)));
    const union = shards.flat();
    expect(new Set(union).size).toBe(union.length);
    expect(union.sort()).toEqual([...all].sort());
    expect(shards.every((s) => s.length < all.length)).toBe(true);
  });

  it('--machine makes a matrix and --tag filters', async () => {
    const r = await fleetlab(['list', fixture('matrix.ts'), '--tag', 'nightly', '--machine', 'x86_64-direct', '--machine', 'x86_64-direct']);
    expect(r.stdout.trim().split('\n')).toHaveLength(4);
    const matrix = await fleetlab(['list', fixture('matrix.ts'), '--grep', '^case 1 ', '--machine', 'all']);
    expect(matrix.stdout.trim().split('\n')).toEqual(listProfiles().map((p) => `harness/runner/fixtures/matrix.ts::case 1[${p}]`));
    expect(listProfiles()).toEqual(expect.arrayContaining(['x86_64-direct', 'x86_64-bios', 'x86_64-uefi', 't100ta', 'aarch64-uefi', 'aarch64-uboot', 'raspi3b']));
  });
});

describe('durations with units', () => {
  it("'5m', '2m', '20s', '1.5s' budget a scenario, a step, a command and a wait; { timeout: 10 } is refused at the call", async () => {
    const r = await fleetlab(['run', fixture('durations.ts'), '--output', await mkdtemp(join(tmpdir(), 'fleetlab-durations-'))]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ a command past its 1\.5 s is killed/);
  });

  it('a scenario timeout of 10 exits 2 before anything boots, naming the file and suggesting 10s', async () => {
    const r = await fleetlab(['run', fixture('seconds-timeout.ts')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`harness/runner/fixtures/seconds-timeout.ts: scenario "ten what?": timeout: 10 is 10 ms (fleetlab's timeouts are milliseconds, not seconds as in the NixOS test driver); write '10s' for 10 seconds`);
    expect(r.stdout).not.toMatch(/▶/);
  });
});

describe('--repeat-each', () => {
  it('runs each case N times, one JUnit test case per run, and reports each case\'s pass rate', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-repeat-'));
    const r = await fleetlab(['run', fixture('repeat.ts'), '--repeat-each', '3', '--workers', '1', '--output', out]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(1);
    const suite = parse(await readFile(join(out, 'junit.xml'), 'utf8')).testsuites.testsuite[0];
    const byName = new Map((suite.testcase as Case[]).map((c) => [c.name, c]));
    const names = (s: string) => [1, 2, 3].map((i) => `${s} [x86_64-direct] (repeat ${i}/3)`);
    expect([...byName.keys()].sort()).toEqual([...names('fails every second run'), ...names('always passes')].sort());
    expect(suite).toMatchObject({ tests: '6', failures: '1' });
    expect(byName.get('fails every second run [x86_64-direct] (repeat 2/3)')!.failure).toBeDefined();
    for (const i of [1, 3]) expect(byName.get(`fails every second run [x86_64-direct] (repeat ${i}/3)`)!.failure).toBeUndefined();
    expect(r.stdout).toContain('pass rates (--repeat-each):');
    expect(r.stdout).toContain('2/3 passed (67 %)  harness/runner/fixtures/repeat.ts::fails every second run[x86_64-direct]');
    expect(r.stdout).toContain('3/3 passed (100 %)  harness/runner/fixtures/repeat.ts::always passes[x86_64-direct]');
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    expect(report.passRates).toEqual([
      { caseId: 'harness/runner/fixtures/repeat.ts::fails every second run[x86_64-direct]', scenario: 'fails every second run', variant: 'x86_64-direct', passed: 2, runs: 3 },
      { caseId: 'harness/runner/fixtures/repeat.ts::always passes[x86_64-direct]', scenario: 'always passes', variant: 'x86_64-direct', passed: 3, runs: 3 },
    ]);
    expect(report.results.map((c: { id: string }) => c.id)).toContain('harness/runner/fixtures/repeat.ts::fails every second run[x86_64-direct]#2');
  });

  it('lists N ids per case, keeps a case\'s repeats in one shard, and refuses 0', async () => {
    const ids = (await fleetlab(['list', fixture('matrix.ts'), '--grep', '^case 1 ', '--repeat-each', '2'])).stdout.trim().split('\n');
    expect(ids).toEqual(['harness/runner/fixtures/matrix.ts::case 1[x86_64-direct]#1', 'harness/runner/fixtures/matrix.ts::case 1[x86_64-direct]#2']);
    const shards = await Promise.all([1, 2, 3].map(async (k) => (await fleetlab(['list', fixture('matrix.ts'), '--shard', `${k}/3`, '--repeat-each', '2'])).stdout.trim().split('\n').filter(Boolean)));
    for (const shard of shards) for (const id of shard) expect(shard).toContain(id.replace(/#[12]$/, (m) => (m === '#1' ? '#2' : '#1')));
    expect(shards.flat()).toHaveLength(24);
    const zero = await fleetlab(['list', fixture('matrix.ts'), '--repeat-each', '0']);
    expect(zero.exitCode).toBe(2);
    expect(zero.stderr).toContain('--repeat-each 0: expected a whole number >= 1');
  });
});

describe('interruption', () => {
  it('SIGTERM mid-scenario leaves a valid JUnit with the running case as an interrupted error, and no QEMU', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-sig-'));
    const child = execa(process.execPath, [cli, 'run', fixture('slow.ts'), '--output', out, '--workers', '1'], { cwd: root, reject: false, env: { CI: '1' } });
    // quick runs first and finishes; then slow starts its long step.
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`slow never started: ${seen}`)), 120_000);
      child.stdout!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('▶ harness/runner/fixtures/slow.ts::slow')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 6000));
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode).toBe(143);
    const doc = parse(await readFile(join(out, 'junit.xml'), 'utf8'));
    const cs = new Map((doc.testsuites.testsuite[0].testcase as Case[]).map((c) => [c.name, c]));
    expect(cs.get('quick [x86_64-direct]')!.error).toBeUndefined();
    expect((cs.get('slow [x86_64-direct]')!.error as Record<string, string>).message).toMatch(/^interrupted/);
    expect(processesMatching('process=fleetlab-vm')).toEqual([]);
  }, 200_000);
});

describe('report merge', () => {
  it('merges shard files into one with recomputed totals', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-merge-'));
    const a = join(dir, 'a.xml');
    const b = join(dir, 'b.xml');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(a, '<?xml version="1.0"?><testsuites><testsuite name="x" tests="2" failures="1" errors="0" skipped="0" time="1.5"><testcase classname="x" name="a" time="1"/><testcase classname="x" name="b" time="0.5"><failure message="m"/></testcase></testsuite></testsuites>');
    await writeFile(b, '<?xml version="1.0"?><testsuites><testsuite name="y" tests="1" failures="0" errors="1" skipped="0" time="2"><testcase classname="y" name="c" time="2"><error message="e"/></testcase></testsuite></testsuites>');
    const r = await fleetlab(['report', 'merge', a, b, '-o', join(dir, 'all.xml')]);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = parse(await readFile(join(dir, 'all.xml'), 'utf8'));
    expect(doc.testsuites).toMatchObject({ tests: '3', failures: '1', errors: '1' });
    expect(doc.testsuites.testsuite.map((s: { name: string }) => s.name)).toEqual(['x', 'y']);
    expect(r.stdout).toMatch(/report\.html not merged: no report\.json beside/);
  });
});
