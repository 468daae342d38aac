// Pauses without a terminal (CI): ctx.pause() and --debug wait for `fleetlab attach`, whose REPL evaluates with the
// case's context bound; .continue resumes, .abort fails the case; a pause does not count against the scenario's
// deadline; nobody attaching within --pause-timeout lets the case go on. The fixture boots nothing (start: 'manual').
import { execa, type ResultPromise } from 'execa';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OutputWatch } from '../testing/stream-wait.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');
const fixture = join(root, 'harness/debug/fixtures/breakpoint.ts');

async function start(args: string[]) {
  const out = await mkdtemp(join(tmpdir(), 'fleetlab-pause-'));
  const runtime = await mkdtemp(join(tmpdir(), 'fl-rt-'));
  const env = { CI: '1', FLEETLAB_RUNTIME_DIR: runtime };
  const run = execa(process.execPath, [cli, 'run', fixture, '--output', out, '--history', 'none', '--reporter', 'console,junit,json', ...args], { cwd: root, reject: false, env });
  const attach = () => {
    const a = execa(process.execPath, [cli, 'attach'], { cwd: root, reject: false, env });
    return Object.assign(a, { said: new OutputWatch(a.stdout!) });
  };
  return { out, runtime, run, said: new OutputWatch(run.stdout!), attach };
}

/** Sends `line` to an attached REPL and waits for the answer matching `re`. */
async function ask(a: ResultPromise & { said: OutputWatch }, line: string, re: RegExp): Promise<string> {
  a.stdin!.write(`${line}\n`);
  return a.said.until(re, 20_000);
}

function report(out: string): { results: Array<{ id: string; status: string; attempts: Array<{ error?: { message: string }; steps: Array<{ name: string; durationMs: number }> }> }> } {
  return JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
}

describe('pauses without a terminal', () => {
  it('--debug pauses before the first step and at ctx.pause(); fleetlab attach evaluates, .continue resumes, the pause outlasts the budget', async () => {
    const { out, runtime, run, said, attach } = await start(['-g', '^breakpoint', '--debug', '--pause-timeout', '60s', '--input', 'who=me']);
    expect(await said.until(/paused .*breakpoint.*before the first step[\s\S]*fleetlab attach \S+/, 60_000)).toMatch(/idle \(x86_64-direct\): not running/);
    let a = attach();
    await a.said.until(/attached to .*paused before the first step/, 20_000);
    a.stdin!.write('.continue\n');
    expect((await a).exitCode).toBe(0);

    await said.until(/paused .*at ctx\.pause\("look around"\)[\s\S]*fleetlab attach/, 30_000);
    a = attach();
    await a.said.until(/attached to/, 20_000);
    expect(await ask(a, 'idle.state', /'stopped'/)).toContain("'stopped'");
    expect(await ask(a, 'await Promise.resolve(ctx.inputs.who + "!")', /'me!'/)).toContain("'me!'");
    expect(await ask(a, 'Object.keys(machines).join()', /'idle'/)).toContain("'idle'");
    // Paused past the scenario's 10 s budget: the pause does not count.
    await new Promise((r) => setTimeout(r, 11_000));
    a.stdin!.write('.continue\n');
    expect((await a).exitCode).toBe(0);

    const r = await run;
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const c = report(out).results[0]!;
    expect(c.status).toBe('passed');
    expect(c.attempts[0]!.steps.find((s) => s.name === 'paused')!.durationMs).toBeGreaterThan(10_000);
    expect(readdirSync(runtime)).toEqual([]);
  }, 120_000);

  it('.abort fails the case; a failed case pauses again under --pause-on-failure and goes on after --pause-timeout', async () => {
    // The timeout outlasts starting `fleetlab attach` (~1 s idle, past 2 s on a host busy with other files' guests).
    const { out, runtime, run, said, attach } = await start(['-g', '^breakpoint', '--pause-on-failure', '--pause-timeout', '10s']);
    await said.until(/paused .*at ctx\.pause\("look around"\)/, 60_000);
    const a = attach();
    await a.said.until(/attached to/, 20_000);
    a.stdin!.write('.abort\n');
    expect((await a).exitCode).toBe(0);
    const r = await run;
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/paused .*on failure: aborted from the REPL while paused at ctx\.pause\("look around"\)/);
    expect(r.stdout).toContain('nobody answered within 10 s: going on');
    expect(report(out).results[0]!.attempts[0]!.error!.message).toBe('aborted from the REPL while paused at ctx.pause("look around")');
    expect(readFileSync(join(out, 'junit.xml'), 'utf8')).toContain('aborted from the REPL');
    expect(readdirSync(runtime)).toEqual([]);
  }, 120_000);

  it('without --debug or --pause-on-failure and no terminal, ctx.pause() only says it did not pause; a failure prints its code frame', async () => {
    const { out, run } = await start(['--workers', '1']);
    const r = await run;
    expect(r.exitCode, r.stdout).toBe(1);
    expect(r.stdout).not.toContain('⏸');
    // The failed case at the terminal: its step, assert's diff, and the scenario line with a caret.
    expect(r.stdout).toContain('    in step: compare\n    the greeting\n    + actual - expected');
    expect(r.stdout).toContain('    ❯ harness/debug/fixtures/breakpoint.ts:24:');
    expect(r.stdout).toContain("    > 24 |     await step('compare', () => assert.equal('actual', 'expected', 'the greeting'));");
    expect(readFileSync(join(out, 'junit.xml'), 'utf8')).toContain('not paused at ctx.pause("look around"): this run has no terminal');
  }, 60_000);

  it('a bad --pause-timeout, and attach or console with nothing paused, are errors that say what to do', async () => {
    const { run } = await start(['--pause-timeout', 'soon']);
    const r = await run;
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--pause-timeout: "soon" is no duration');
    const runtime = await mkdtemp(join(tmpdir(), 'fl-rt-'));
    const env = { FLEETLAB_RUNTIME_DIR: runtime };
    const at = await execa(process.execPath, [cli, 'attach'], { cwd: root, reject: false, env });
    expect(at.exitCode).toBe(2);
    expect(at.stderr).toContain('fleetlab attach: no session to attach to. None is live: pause a run (ctx.pause, --debug, --pause-on-failure) or start machines with fleetlab up.');
    const con = await execa(process.execPath, [cli, 'console', 'main'], { cwd: root, reject: false, env });
    expect(con.exitCode).toBe(2);
    expect(con.stderr).toContain('fleetlab console: no machine "main" in a live session.');
    expect(existsSync(runtime)).toBe(true);
  }, 60_000);
});
