// Tests of the NixOS test driver ported to fleetlab (scenarios/ntd-*.ts), run as a user runs them: through the CLI,
// on x86_64-systemd testbeds. Each must pass with every step of the NTD script there, in order.
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

interface Report {
  results: Array<{ id: string; status: string; attempts: Array<{ steps: Array<{ name: string; status: string }> }>; artifacts?: unknown }>;
}

describe('NTD tests ported to fleetlab', () => {
  // The check, `fleetlab run scenarios/ntd-login.ts scenarios/ntd-nat.ts`, one case at a time here: another
  // test file boots guests beside this one on 2 cores.
  it("login.nix (VT switching, a PAM login with logind's device access, Ctrl-Alt-Del) and nat.nix (curl, FTP and ping through a NAT router, switched off and on) pass step by step", async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-ntd-'));
    const run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/ntd-login.ts', 'scenarios/ntd-nat.ts', '--workers', '1', '--output', out], { cwd: root, reject: false, timeout: 19 * 60_000, env: { CI: '1', NO_COLOR: '1' } });
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report;
    const steps = (name: string) => report.results.find((r) => r.id.includes(`::${name}[`))!.attempts.at(-1)!.steps.map((s) => `${s.status} ${s.name}`);
    expect(steps('login')).toEqual([
      'passed start machine',
      'passed the node: sound (snd-timer, as sound.enable loads it)',
      'passed create user',
      'passed Check whether switching VTs works',
      'passed Log in as alice on a virtual console',
      'passed Systemd gives and removes device ownership as needed',
      'passed Virtual console logout',
      'passed Check whether ctrl-alt-delete works',
    ]);
    expect(steps('nat')).toEqual([
      'passed start client, router, server',
      "passed the nodes' configurations",
      'passed The router should have access to the server',
      'passed The client should be also able to connect via the NAT router',
      'passed Test whether passive FTP works',
      'passed Test whether active FTP works',
      'passed Test ICMP',
      "passed If we turn off NAT, the client shouldn't be able to reach the server",
      'passed And make sure that reloading the NAT job works',
    ]);
    // NTD's screenshot("postboot") and screenshot("getty"): PNGs in the machine's folder, attached to the case.
    const junit = await readFile(join(out, 'junit.xml'), 'utf8');
    for (const shot of ['postboot', 'getty']) {
      const path = new RegExp(`\\[\\[ATTACHMENT\\|([^\\]]+/${shot}\\.png)\\]\\]`).exec(junit)?.[1];
      expect(path, `${shot}.png attached`).toBeTruthy();
      expect((await stat(path!)).size).toBeGreaterThan(1000);
    }
    // The client's web and FTP traffic reached the server from the router's outside address: the NAT did it.
    const caseDir = join(out, 'machines', (await readdir(join(out, 'machines'))).find((d) => d.includes('ntd-nat'))!, 'try-1');
    const dump = await execa('tcpdump', ['-nr', join(caseDir, 'outside.pcap'), '-A', 'tcp port 21'], { reject: false });
    expect(dump.stdout).toMatch(/229 Entering Extended Passive Mode/);
    expect(dump.stdout).toMatch(/500 Illegal (E?PRT|PORT) command/);
  }, 20 * 60_000);
});
