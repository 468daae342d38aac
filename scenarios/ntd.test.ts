// Tests of the NixOS test driver ported to fleetlab (scenarios/ntd-*.ts), run as a user runs them: through the CLI,
// on the x86_64-systemd testbed. Each must pass with every step of the NTD script there, in order.
import { execa } from 'execa';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

interface Report {
  results: Array<{ status: string; attempts: Array<{ steps: Array<{ name: string; status: string }> }>; artifacts?: unknown }>;
}

describe('NTD tests ported to fleetlab', () => {
  it("login.nix: VT switching, a PAM login on tty2 with logind's device access, logout, Ctrl-Alt-Del", async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-ntd-login-'));
    const run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/ntd-login.ts', '--output', out], { cwd: root, reject: false, timeout: 14 * 60_000, env: { CI: '1', NO_COLOR: '1' } });
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report;
    const steps = report.results[0]!.attempts.at(-1)!.steps.map((s) => `${s.status} ${s.name}`);
    expect(steps).toEqual([
      'passed start machine',
      'passed the node: sound (snd-timer, as sound.enable loads it)',
      'passed create user',
      'passed Check whether switching VTs works',
      'passed Log in as alice on a virtual console',
      'passed Systemd gives and removes device ownership as needed',
      'passed Virtual console logout',
      'passed Check whether ctrl-alt-delete works',
    ]);
    // NTD's screenshot("postboot") and screenshot("getty"): PNGs in the machine's folder, attached to the case.
    const junit = await readFile(join(out, 'junit.xml'), 'utf8');
    for (const shot of ['postboot', 'getty']) {
      const path = new RegExp(`\\[\\[ATTACHMENT\\|([^\\]]+/${shot}\\.png)\\]\\]`).exec(junit)?.[1];
      expect(path, `${shot}.png attached`).toBeTruthy();
      expect((await stat(path!)).size).toBeGreaterThan(1000);
    }
  }, 15 * 60_000);
});
