// --pause-on-failure without a terminal: a failed case's machine stays up while the pause waits; `fleetlab console`
// attaches to its serial console and `fleetlab attach` to the REPL, where machine methods work; .continue lets the
// case fail as before and nothing of it is left running.
import { execa } from 'execa';
import { mkdtemp } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesMatching } from '../testing/processes.ts';
import { OutputWatch } from '../testing/stream-wait.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');

describe('--pause-on-failure', () => {
  it('keeps the failed machine up for fleetlab console and fleetlab attach, then fails the case and stops it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-pause-'));
    const runtime = await mkdtemp(join(tmpdir(), 'fl-rt-'));
    const env = { CI: '1', FLEETLAB_RUNTIME_DIR: runtime };
    const run = execa(process.execPath, [cli, 'run', join(root, 'harness/runner/fixtures/pause.ts'), '--pause-on-failure', '--output', out, '--history', 'none'], { cwd: root, reject: false, env });
    const said = new OutputWatch(run.stdout!);
    const printed = await said.until(/fleetlab attach \S+/, 120_000);
    expect(printed).toMatch(/paused .*fails and pauses.*on failure: /);
    expect(printed).toContain('paused (x86_64-direct): fleetlab console paused');
    expect(processesMatching('process=fleetlab-paused').length).toBe(1);

    const con = execa(process.execPath, [cli, 'console', 'paused'], { cwd: root, reject: false, env });
    const conSaid = new OutputWatch(con.stdout!);
    await new Promise((r) => setTimeout(r, 500));
    con.stdin!.write('\n');
    await conSaid.until(/paused login:/, 30_000);
    con.stdin!.write(Buffer.from([0x1d]));
    expect((await con).exitCode).toBe(0);

    const a = execa(process.execPath, [cli, 'attach'], { cwd: root, reject: false, env });
    const aSaid = new OutputWatch(a.stdout!);
    await aSaid.until(/attached to/, 20_000);
    a.stdin!.write("await paused.succeed('uname -m')\n");
    expect(await aSaid.until(/'x86_64\\n'/, 60_000)).toContain("'x86_64\\n'");
    a.stdin!.write('.continue\n');
    expect((await a).exitCode).toBe(0);

    const r = await run;
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/resumed/);
    expect(processesMatching('process=fleetlab-paused')).toEqual([]);
    expect(readdirSync(runtime)).toEqual([]);
  }, 240_000);
});
