// report.html in a real browser: Debian's Chromium driven by playwright-core, the page opened from file:// after a
// real run with a passing, a failing and a flaky case. Nothing may leave the file; the failure shows with its step
// and error; the filters work; the failing case's console is scrolled to the failing step; a screenshot is kept.
import { execa } from 'execa';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { get } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttemptResult, MachineResult } from '../runner/results.ts';
import { CHROMIUM, openCaseReport } from '../testing/report-page.ts';

const root = join(import.meta.dirname, '../..');

describe('report.html in Chromium', () => {
  let out: string;
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('Chromium is not installed: apt-get install chromium (scripts/setup.sh does)');
    out = await mkdtemp(join(tmpdir(), 'fleetlab-html-'));
    const run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/runner/fixtures/outcomes.ts', '--grep', '^(passes|fails an assertion|flaky) ', '--retries', '1', '--output', out, '--history', join(out, 'history.sqlite')], {
      cwd: root,
      reject: false,
      timeout: 300_000,
      env: { CI: '1', NO_COLOR: '1' },
    });
    expect(run.exitCode, run.stdout + run.stderr).toBe(1);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${join(out, 'report.html')}`);
  }, 360_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('loads from file:// with no request leaving the file', () => {
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.filter((u) => u !== `file://${join(out, 'report.html')}` && !u.startsWith('data:'))).toEqual([]);
  });

  it('shows the totals, and the failed case opened at its failing step with the error', async () => {
    await expect(page.locator('header').textContent()).resolves.toMatch(/3 of 3 cases.*1 passed.*1 failed.*1 flaky/);
    const failed = page.locator('.case[data-status="failed"]');
    await expect(failed.getAttribute('class')).resolves.toMatch(/\bopen\b/);
    await expect(failed.locator('.step.failed').first().textContent()).resolves.toMatch(/compare/);
    await expect(failed.locator('.error').textContent()).resolves.toMatch(/the answer/);
    // The passing case stays closed.
    await expect(page.locator('.case[data-status="passed"]').getAttribute('class')).resolves.not.toMatch(/\bopen\b/);
  });

  it("marks each failure with its class against the run history (a fresh one: the failure is new, the retry's pass flaky)", async () => {
    await expect(page.locator('.case[data-status="failed"] .head .hist.h-new').textContent()).resolves.toBe('new');
    await expect(page.locator('.case[data-status="failed"] .head .hist').getAttribute('title')).resolves.toBe('no earlier run had this case');
    await expect(page.locator('.case[data-status="flaky"] .head .hist.h-flaky').textContent()).resolves.toBe('flaky');
    await expect(page.locator('.case[data-status="passed"] .head .hist').count()).resolves.toBe(0);
  });

  it("a failed case's evidence from its machine: dmesg, journal, failed units, generation, attached", async () => {
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: Array<{ scenario: string; attempts: Array<{ artifacts: Array<{ name: string; path: string }>; output: string[] }> }> };
    const failed = report.results.find((r) => r.scenario === 'fails an assertion')!.attempts.at(-1)!;
    const evidence = failed.artifacts.filter((a) => a.name.startsWith('evidence/'));
    expect(evidence.map((a) => a.name)).toEqual(['evidence/vm-dmesg.txt', 'evidence/vm-journal.txt', 'evidence/vm-failed-units.txt', 'evidence/vm-generation.txt']);
    expect(await readFile(evidence[0]!.path, 'utf8')).toMatch(/^\$ dmesg\n[\s\S]*Linux version/);
    expect(await readFile(evidence[2]!.path, 'utf8')).toMatch(/no systemd: PID 1 is init/);
    expect(failed.output.join('\n')).toMatch(/evidence: vm: dmesg, journal, failed-units, generation in evidence\/vm-\*\.txt/);
    // A passing case fetches nothing.
    const passed = report.results.find((r) => r.scenario === 'passes')!.attempts.at(-1)!;
    expect(passed.artifacts.filter((a) => a.name.startsWith('evidence/'))).toEqual([]);
  });

  it("a case's timeline: a lane for its steps and one for each machine, its states as bars with tooltips", async () => {
    const failed = page.locator('.case[data-status="failed"]');
    const lanes = failed.locator('svg.timeline g.lane');
    await expect(lanes.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-lane')))).resolves.toEqual(['steps', 'vm (x86_64-direct)']);
    await expect(failed.locator('svg.timeline g.lane[data-lane="steps"] rect title').allTextContents()).resolves.toEqual(expect.arrayContaining([expect.stringMatching(/^compare \(failed, \d+\.\d s\)$/)]));
    // The VM's QEMU ran from its start to the end of the case (QemuMachine goes from stopped to running).
    const vm = failed.locator('svg.timeline g.lane[data-lane="vm (x86_64-direct)"]');
    await expect(vm.locator('rect.st-running').count()).resolves.toBe(1);
    await expect(vm.locator('rect.st-running title').textContent()).resolves.toMatch(/^running \d+\.\d s$/);
  });

  it('the failing case\'s console is scrolled to the failing step, and a click on a step moves it', async () => {
    const failed = page.locator('.case[data-status="failed"]');
    const here = failed.locator('pre.log .here');
    await expect(here.count()).resolves.toBe(1);
    const pre = failed.locator('pre.log').first();
    const t0 = Number(await pre.getAttribute('data-t0'));
    const step = failed.locator('.step.failed').first();
    const started = Number(await step.getAttribute('data-started'));
    const atFailure = Number(await here.getAttribute('data-t'));
    expect(atFailure).toBeGreaterThanOrEqual((started - t0) / 1000);
    // The first step, "start vm", is earlier in the log.
    await failed.locator('.step', { hasText: 'start vm' }).click();
    const early = Number(await failed.locator('pre.log .here').getAttribute('data-t'));
    expect(early).toBeLessThan(atFailure);
  });

  it('filters by status, by text and by machine', async () => {
    const visible = async () => page.locator('.case:not(.hidden)').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    await page.locator('nav button[data-status="failed"]').click();
    await expect(visible()).resolves.toEqual(['failed']);
    await page.locator('nav button[data-status="all"]').click();
    await page.locator('#text-filter').fill('flaky');
    await expect(visible()).resolves.toEqual(['flaky']);
    await page.locator('#text-filter').fill('');
    await page.locator('#machine-filter').selectOption('x86_64-direct');
    await expect(visible()).resolves.toHaveLength(3);
  });

  it('fleetlab report show serves the folder on 127.0.0.1: the page, its console logs, and nothing outside', async () => {
    const show = execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'report', 'show', out], { cwd: root, reject: false });
    try {
      const url = await new Promise<string>((ok, fail) => {
        show.stdout!.on('data', (d: Buffer) => {
          const m = /http:\/\/127\.0\.0\.1:\d+\/report\.html/.exec(d.toString());
          if (m) ok(m[0]);
        });
        void show.then((r) => fail(new Error(`report show ended: ${r.stderr}`)));
      });
      const served = await browser.newPage();
      await served.goto(url);
      await expect(served.locator('.case').count()).resolves.toBe(3);
      const href = await served.locator('.case[data-status="failed"] a', { hasText: 'full console log' }).getAttribute('href');
      const log = await fetch(new URL(href!, url));
      expect(log.status).toBe(200);
      expect(await log.text()).toMatch(/fleetlab: starting qemu-system-x86_64/);
      // Encoded slashes that would climb out of the folder once decoded: refused.
      const status = await new Promise<number>((ok, fail) => get({ host: '127.0.0.1', port: new URL(url).port, path: '/x%2f..%2f..%2f..%2f..%2fetc%2fpasswd' }, (res) => ok(res.statusCode!)).on('error', fail));
      expect(status).toBe(403);
      await served.close();
    } finally {
      show.kill('SIGTERM');
      await show;
    }
  });

  it('fleetlab report merge merges shards\' report.html, linking into their folders', async () => {
    const shards = await mkdtemp(join(tmpdir(), 'fleetlab-shards-'));
    try {
      for (const k of [1, 2]) {
        const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/report/fixtures/progress.ts', '--shard', `${k}/2`, '--output', join(shards, `s${k}`)], { cwd: root, reject: false, timeout: 120_000, env: { CI: '1', NO_COLOR: '1' } });
        expect(r.stdout, r.stderr).toMatch(/^\d passed/m);
      }
      const merge = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'report', 'merge', join(shards, 's1'), join(shards, 's2/junit.xml'), '-o', join(shards, 'all/junit.xml')], { cwd: root, reject: false });
      expect(merge.exitCode, merge.stderr).toBe(0);
      expect(merge.stdout).toContain(`report: ${join(shards, 'all/report.html')}`);
      const merged = await browser.newPage();
      await merged.goto(`file://${join(shards, 'all/report.html')}`);
      await expect(merged.locator('.case').count()).resolves.toBe(3);
      await expect(merged.locator('header').textContent()).resolves.toMatch(/3 of 3 cases.*2 passed.*1 failed/);
      // The failing case's step and error, from whichever shard ran it; its log linked into that shard's folder.
      const failed = merged.locator('.case[data-status="failed"]');
      await expect(failed.locator('.error').textContent()).resolves.toMatch(/the answer/);
      await expect(failed.locator('a', { hasText: 'full console log' }).getAttribute('href')).resolves.toMatch(/^\.\.\/s[12]\/machines\//);
      await merged.close();
    } finally {
      await rm(shards, { recursive: true, force: true });
    }
  }, 300_000);

  it('a screenshot of the page, kept beside the report', async () => {
    const shot = join(out, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(20_000);
  });
});

describe("report.html's timeline: networks", () => {
  it('a partition is a bar on the network lane until it heals, each change a mark with its text', async () => {
    if (!CHROMIUM) throw new Error('Chromium is not installed: apt-get install chromium (scripts/setup.sh does)');
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-html-net-'));
    const run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/report/fixtures/timeline.ts', '--output', out, '--history', 'none'], { cwd: root, reject: false, timeout: 120_000, env: { CI: '1', NO_COLOR: '1' } });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${join(out, 'report.html')}`);
      const c = page.locator('.case').first();
      await c.locator('.head').click();
      const lane = c.locator('svg.timeline g.lane[data-lane="network"]');
      await expect(lane.locator('rect.net-cut title').allTextContents()).resolves.toEqual([expect.stringMatching(/^network lan: partitioned into \[a\] \| \[b\] \(1 links cut\) \(0\.\d s\)$/)]);
      await expect(lane.locator('rect.net title').allTextContents()).resolves.toEqual(['network lan: healed (every link up)', expect.stringMatching(/^network lan: a <-> b .*loss/)]);
      // The bar spans the partition: from the first step's time to the heal, about 300 ms.
      const w = await lane.locator('rect.net-cut').getAttribute('width');
      expect(Number(w)).toBeGreaterThan(0);
    } finally {
      await browser.close();
      await rm(out, { recursive: true, force: true });
    }
  }, 180_000);

  it("a restored machine's lane marks where it came up, with what it was restored from", async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-html-restore-'));
    const t0 = Date.parse('2026-12-06T10:00:00Z');
    const vm = (role: string, facts: MachineResult['facts']): MachineResult => ({ role, name: role, profile: 'x86_64-direct', logPath: join(out, `${role}.log`), facts, events: [{ t: t0, kind: 'state', detail: 'stopped' }, { t: t0 + 2000, kind: 'state', detail: 'running' }] });
    const base = { kind: 'vm', profile: 'x86_64-direct', arch: 'x86_64', firmware: 'direct', accel: 'tcg', accelReason: 'test', qemuVersion: '7.2.0' } as const;
    const attempt: AttemptResult = { attempt: 1, status: 'passed', startedAt: new Date(t0).toISOString(), durationMs: 10_000, steps: [], artifacts: [], output: [], machines: [vm('warm', { ...base, start: { mode: 'warm', ms: 1800 } }), vm('kept', { ...base, checkpoint: { name: 'gen2 switched', mode: 'restored', ms: 2400, madeBy: 'x.ts::first[x86_64-direct]' } }), vm('cold', { ...base, start: { mode: 'cold', ms: 9000, reason: 'first of its shape' } })] };
    const { page, errors, close } = await openCaseReport(out, 'x.ts::restores[x86_64-direct]', attempt);
    try {
      expect(errors).toEqual([]);
      const marks = (role: string) => page.locator(`svg.timeline g.lane[data-lane="${role} (x86_64-direct)"] rect.restore title`).allTextContents();
      await expect(marks('warm')).resolves.toEqual(['restored from a snapshot in 1.8 s']);
      await expect(marks('kept')).resolves.toEqual(['restored checkpoint "gen2 switched" in 2.4 s (made by x.ts::first[x86_64-direct])']);
      await expect(marks('cold')).resolves.toEqual([]);
    } finally {
      await close();
      await rm(out, { recursive: true, force: true });
    }
  });
});

