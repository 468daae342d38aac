// The REPL on a real terminal, driven through tmux (send-keys, capture-pane): `fleetlab up` with two machines on a
// LAN that ping each other from the REPL, `fleetlab ssh` into one, Ctrl-D leaving nothing running; and
// `fleetlab run scenarios/smoke.ts --debug`, paused before its first step, a machine command answered in the REPL,
// `.continue` finishing the run passed.
import { execa } from 'execa';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { processesMatching } from '../testing/processes.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');
const socket = `fleetlab-test-${process.pid}`;
const tmux = (...args: string[]) => execa('tmux', ['-L', socket, ...args], { reject: false });

/** The pane's text (joined lines: a long line wraps). */
async function screen(session: string): Promise<string> {
  return (await tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', session)).stdout;
}

/** Waits until the pane shows `re`; fails with the screen. */
async function waitScreen(session: string, re: RegExp, ms: number): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await screen(session);
    if (re.test(s)) return s;
    if (Date.now() > end) throw new Error(`the terminal did not show ${re} within ${ms} ms; it shows:\n${s}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function open(session: string, command: string, env: Record<string, string>): Promise<void> {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const r = await tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', '-c', root, 'env', ...vars, 'bash', '-c', `${command}; echo EXIT=$?; sleep 600`);
  expect(r.exitCode, r.stderr).toBe(0);
}

afterAll(async () => {
  await tmux('kill-server');
});

describe('the REPL in a terminal', () => {
  it('fleetlab up --count 2 --net lan: the machines ping each other from the REPL, fleetlab ssh reaches one, Ctrl-D leaves nothing', async () => {
    const runtime = await mkdtemp(join(tmpdir(), 'fl-rt-'));
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-up-'));
    await open('up', `${process.execPath} ${cli} up x86_64-direct --count 2 --net lan --name uptest --output ${out}`, { FLEETLAB_RUNTIME_DIR: runtime });
    const shown = await waitScreen('up', /fleetlab up> $/m, 180_000);
    expect(shown).toMatch(/on lan \(uptest1 198\.18\.\d+\.\d+, uptest2 198\.18\.\d+\.\d+\)/);
    expect(shown).toMatch(/uptest2 \(x86_64-direct\): fleetlab console uptest2 {3}fleetlab ssh uptest2/);
    expect(processesMatching('process=fleetlab-uptest').length).toBe(2);

    await tmux('send-keys', '-t', 'up', "await machines[1].succeed('ping -c1 ' + machines[0].address('lan'))", 'Enter');
    await waitScreen('up', /1 packets transmitted, 1 packets received/, 60_000);

    const ssh = await execa(process.execPath, [cli, 'ssh', 'uptest2', '--', 'cat', '/proc/sys/kernel/hostname'], { cwd: root, reject: false, env: { FLEETLAB_RUNTIME_DIR: runtime } });
    expect(ssh.exitCode, ssh.stderr).toBe(0);
    expect(ssh.stdout.trim()).toBe('uptest2');

    await tmux('send-keys', '-t', 'up', 'C-d');
    const end = await waitScreen('up', /EXIT=\d+/, 60_000);
    expect(end).toContain('fleetlab up: the machines are stopped');
    expect(end).toContain('EXIT=0');
    expect(processesMatching('process=fleetlab-uptest')).toEqual([]);
    expect(await readdir(runtime)).toEqual([]);
  }, 300_000);

  it('fleetlab run scenarios/smoke.ts --debug: paused before the first step, the REPL answers, .continue finishes it passed', async () => {
    const runtime = await mkdtemp(join(tmpdir(), 'fl-rt-'));
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-debug-'));
    await open('dbg', `${process.execPath} ${cli} run scenarios/smoke.ts --debug --output ${out} --history none`, { FLEETLAB_RUNTIME_DIR: runtime });
    const shown = await waitScreen('dbg', /fleetlab smoke\[x86_64-direct\]> $/m, 180_000);
    expect(shown).toMatch(/paused scenarios\/smoke\.ts::smoke\[x86_64-direct\]: before the first step/);
    expect(shown).toContain('main (x86_64-direct): fleetlab console main');
    // Nothing of the scenario ran yet.
    expect(shown).not.toContain('commands and exit codes');

    await tmux('send-keys', '-t', 'dbg', "await main.succeed('uname -m')", 'Enter');
    await waitScreen('dbg', /'x86_64\\n'/, 60_000);
    await tmux('send-keys', '-t', 'dbg', '.continue', 'Enter');
    const end = await waitScreen('dbg', /EXIT=\d+/, 300_000);
    expect(end).toMatch(/✓ passed scenarios\/smoke\.ts::smoke\[x86_64-direct\]/);
    expect(end).toContain('EXIT=0');
  }, 480_000);
});
