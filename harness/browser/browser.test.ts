// Browser checks for real: Debian's Chromium through playwright-core on a testbed's busybox httpd page, forwarded to
// 127.0.0.1 over the machine's host link. scenarios/web.ts passes (text, a form round trip, the page after a reboot);
// a failed check leaves a screenshot and a Playwright trace; requests off the host are blocked and logged; no host
// link is a configuration error; a runner killed with SIGKILL leaves no Chromium behind.
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesMatching } from '../testing/processes.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');

describe('browser checks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-browser-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('scenarios/web.ts passes: the page, a form round trip, the page after a reboot', async () => {
    const out = join(dir, 'web');
    const run = await execa(process.execPath, [cli, 'run', 'scenarios/web.ts', '--output', out], { cwd: root, reject: false, timeout: 300_000, env: { CI: 'true', NO_COLOR: '1' } });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    for (const s of ['open the device page', 'the page says what it is', 'a note through the form is stored on the device', 'the page after a reboot']) expect(run.stdout).toContain(`✓ ${s}`);
  }, 320_000);

  it('a failed check keeps a screenshot and a trace; calls off the host are blocked; no host link says so', async () => {
    const out = join(dir, 'faults');
    const run = await execa(process.execPath, [cli, 'run', 'harness/browser/fixtures/web-faults.ts', '--grep', '^(fails on the page|no host link) ', '--workers', '2', '--output', out], {
      cwd: root,
      reject: false,
      timeout: 300_000,
      env: { CI: 'true', NO_COLOR: '1' },
    });
    expect(run.exitCode, run.stdout + run.stderr).not.toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const byName = (n: string) => report.results.find((c: { scenario: string }) => c.scenario === n).attempts.at(-1);
    const failed = byName('fails on the page');
    expect(failed.status).toBe('failed');
    expect(failed.error.message).toMatch(/Welcome to the dashboard/);
    expect(failed.output.join('\n')).toMatch(/browser: blocked a request to http:\/\/203\.0\.113\.7\/beacon/);
    const shot = failed.artifacts.find((a: { name: string }) => a.name.endsWith('.png'));
    const trace = failed.artifacts.find((a: { name: string }) => a.name.endsWith('.trace.zip'));
    expect((await readFile(shot.path)).subarray(1, 4).toString()).toBe('PNG');
    expect((await readFile(trace.path)).subarray(0, 2).toString()).toBe('PK');
    const junit = await readFile(join(out, 'junit.xml'), 'utf8');
    expect(junit).toContain(`[[ATTACHMENT|${shot.path}]]`);
    const noLink = byName('no host link');
    expect(noLink.status).toBe('error');
    expect(noLink.error.kind).toBe('configuration');
    expect(noLink.error.message).toMatch(/no host link to forward port 80 over; declare hostLink: true/);
  }, 320_000);

  it('a runner killed with SIGKILL leaves no Chromium behind', async () => {
    const tag = `FLEETLAB_TEST_TAG=browser-kill-${process.pid}`;
    const run = execa(process.execPath, [cli, 'run', 'harness/browser/fixtures/web-faults.ts', '--grep', '^waits with', '--output', join(dir, 'kill')], {
      cwd: root,
      reject: false,
      timeout: 300_000,
      env: { CI: 'true', NO_COLOR: '1', [tag.split('=')[0]!]: tag.split('=')[1]! },
    });
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      run.stdout!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('browser-open')) resolve();
      });
      void run.then((r) => reject(new Error(`the runner ended before its browser opened: ${r.stdout}${r.stderr}`)));
    });
    const chromium = processesMatching('chromium', { environ: tag });
    expect(chromium.length).toBeGreaterThan(0);
    run.kill('SIGKILL');
    await run;
    const until = Date.now() + 10_000;
    let left = chromium;
    while (Date.now() < until && (left = processesMatching('chromium', { environ: tag })).length) await new Promise((r) => setTimeout(r, 200));
    expect(left).toEqual([]);
    expect(processesMatching('qemu-system', { environ: tag })).toEqual([]);
  }, 320_000);
});
