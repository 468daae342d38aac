// The live console on a real terminal: fleetlab run inside tmux (a pseudo-terminal, no CI variable), its screen read
// with capture-pane while it runs. Running cases show their step and elapsed time above a progress line with
// done/total, failures so far and an ETA once a case has finished; at the end the block is gone and the summary stays.
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const session = `fleetlab-tty-${process.pid}`;
const tmux = (...args: string[]) => execa('tmux', args, { reject: false, timeout: 10_000 });

describe('live progress on a terminal', () => {
  let dir: string | undefined;
  afterAll(async () => {
    await tmux('kill-session', '-t', session);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows running steps, done/total, failures and an ETA, then only the summary', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-tty-'));
    const done = join(dir, 'done');
    // The pane's shell runs the CLI with the test's Node, without CI; the pane stays open after it for the last look.
    const command = `cd ${root} && env -u CI -u GITHUB_ACTIONS NO_COLOR=1 ${process.execPath} harness/cli/main.ts run harness/report/fixtures/progress.ts --workers 1 --output ${join(dir, 'out')}; touch ${done}; sleep 60`;
    const started = await tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '40', command);
    expect(started.exitCode, started.stderr).toBe(0);
    const screens: string[] = [];
    const until = Date.now() + 60_000;
    let finished = false;
    while (Date.now() < until && !finished) {
      const cap = await tmux('capture-pane', '-p', '-t', session);
      if (cap.exitCode === 0) screens.push(cap.stdout);
      finished = (await execa('test', ['-e', done], { reject: false })).exitCode === 0;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(finished, 'the run ended within 60 s').toBe(true);
    const all = screens.join('\n=====\n');
    // A running case with its current step and elapsed seconds, and the progress line under it.
    expect(all).toMatch(/progress\.ts::first\[x86_64-direct\] \ds › warm up\n0\/3 done · 1 running/);
    expect(all).toMatch(/progress\.ts::second\[x86_64-direct\] \ds › check the answer\n1\/3 done · 1 running · ETA \ds/);
    // The fleet's six machines as cells on a line of their own (none started: start: 'manual').
    expect(all).toMatch(/progress\.ts::third\[x86_64-direct\] \ds › last words\n {4}node ░░░░░░ 6 stopped\n2\/3 done · 1 failed · 1 running · ETA \ds/);
    // At the end: the summary, and no live block left on the screen.
    const last = (await tmux('capture-pane', '-p', '-t', session)).stdout.trimEnd();
    expect(last).toMatch(/2 passed, 1 failed, 0 errors, 0 skipped in [\d.]+ s$/);
    expect(last).not.toMatch(/\d\/3 done/);
    expect(last).toMatch(/✗ failed harness\/report\/fixtures\/progress\.ts::second/);
  }, 90_000);
});
