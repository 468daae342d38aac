// fleetlab up without a terminal: a scenario file's machines (its body not run) with its start: 'manual' overridden
// by up's start, the REPL reading stdin (and fleetlab attach beside it), the end of stdin stopping everything; and
// the mistakes it names before anything boots.
import { execa } from 'execa';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesMatching } from '../testing/processes.ts';
import { OutputWatch } from '../testing/stream-wait.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');
const fixture = join(root, 'harness/debug/fixtures/breakpoint.ts');

describe('fleetlab up', () => {
  it("boots a scenario file's machines and serves the REPL on stdin and to fleetlab attach; the end of stdin stops them", async () => {
    const runtime = await mkdtemp(join(tmpdir(), 'fl-rt-'));
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-up-'));
    const env = { FLEETLAB_RUNTIME_DIR: runtime };
    const up = execa(process.execPath, [cli, 'up', fixture, '-g', '^breakpoint', '--no-warm', '--output', out], { cwd: root, reject: false, env });
    const said = new OutputWatch(up.stdout!);
    const banner = await said.until(/Ctrl-D stops them all/, 180_000);
    expect(banner).toMatch(/fleetlab up: 1 machine up in [\d.]+ s \(idle booted\)/);
    expect(banner).toMatch(/idle \(x86_64-direct\): fleetlab console idle {3}fleetlab ssh idle/);
    expect(processesMatching('process=fleetlab-idle').length).toBe(1);

    up.stdin!.write("await idle.succeed('hostname')\n");
    await said.until(/'idle\\n'/, 60_000);

    const a = execa(process.execPath, [cli, 'attach'], { cwd: root, reject: false, env });
    const aSaid = new OutputWatch(a.stdout!);
    await aSaid.until(/attached to up-/, 20_000);
    a.stdin!.write('machines.map((m) => m.state).join()\n');
    await aSaid.until(/'running'/, 20_000);
    a.stdin!.end();
    expect((await a).exitCode).toBe(0);

    up.stdin!.end();
    const r = await up;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('fleetlab up: the machines are stopped');
    expect(processesMatching('process=fleetlab-idle')).toEqual([]);
    expect(await readdir(runtime)).toEqual([]);
  }, 240_000);

  it('names a wrong target, count or name before anything boots', async () => {
    const run = (...args: string[]) => execa(process.execPath, [cli, 'up', ...args], { cwd: root, reject: false });
    const noProfile = await run('no-such-profile');
    expect(noProfile.exitCode).toBe(2);
    expect(noProfile.stderr).toMatch(/no-such-profile/);
    const countOnScenario = await run(fixture, '--count', '2');
    expect(countOnScenario.exitCode).toBe(2);
    expect(countOnScenario.stderr).toContain("--count is for a profile; a scenario's machines are its own");
    const twoCases = await run(fixture);
    expect(twoCases.exitCode).toBe(2);
    expect(twoCases.stderr).toMatch(/2 cases \(.*\); pick one with --grep/);
    expect((await run('x86_64-direct', '--count', '0')).stderr).toContain('--count 0: expected a whole number from 1 to 64');
    expect((await run('x86_64-direct', '--name', 'Bad_Name')).stderr).toContain('--name "Bad_Name": use lower-case letters, digits and -');
  }, 60_000);
});
