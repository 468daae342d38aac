// The machine matrix: `fleetlab run scenarios/smoke.ts --machine all` boots every profile once (real firmware and
// bootloaders under TCG) and the smoke scenario checks, on each: uname -m, the firmware the guest sees, the boot
// entry taken, a serial login, and a reboot that keeps an EFI variable. Expectations here are written out per
// profile, not derived from the profiles, so a profile that boots the wrong way fails.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listProfiles } from '../harness/qemu/profile-loader.ts';

const root = join(import.meta.dirname, '..');

interface Expected {
  arch: string;
  firmware: string;
  /** Nothing tells the guest the machine's name (U-Boot on the Pi): it keeps the system's own. */
  ownHostname?: boolean;
  /** The boot entry's marker on the kernel command line; none for direct kernel boot. */
  entry?: string;
  efiVariable: boolean;
  /** The shell channel is a serial login (no virtio console), so there is no separate login step. */
  serialShell?: boolean;
}

const EXPECTED: Record<string, Expected> = {
  'x86_64-direct': { arch: 'x86_64', firmware: 'no UEFI', efiVariable: false },
  'x86_64-systemd': { arch: 'x86_64', firmware: 'no UEFI', efiVariable: false },
  'x86_64-micro': { arch: 'x86_64', firmware: 'no UEFI', efiVariable: false },
  'x86_64-bios': { arch: 'x86_64', firmware: 'no UEFI', entry: 'nixos-default (NixOS - Default)', efiVariable: false },
  'x86_64-uefi': { arch: 'x86_64', firmware: 'UEFI 64-bit', entry: 'nixos-generation-1 (NixOS Generation 1)', efiVariable: true },
  t100ta: { arch: 'x86_64', firmware: 'UEFI 32-bit', entry: 'nixos-default (NixOS - Default)', efiVariable: true },
  'aarch64-uefi': { arch: 'aarch64', firmware: 'UEFI 64-bit', entry: 'nixos-generation-1 (NixOS Generation 1)', efiVariable: true },
  'aarch64-uboot': { arch: 'aarch64', firmware: 'device tree, no UEFI', entry: 'nixos-default (NixOS - Default)', efiVariable: false },
  raspi3b: { arch: 'aarch64', firmware: 'device tree, no UEFI', entry: 'nixos-default (NixOS - Default)', efiVariable: false, serialShell: true, ownHostname: true },
};

interface Step {
  name: string;
  status: string;
  error?: { message: string };
}
interface CaseResult {
  variant: string;
  status: string;
  attempts: Array<{ steps: Step[]; error?: { message: string }; machines: Array<{ facts?: { accel: string; firmware: string; arch: string } }> }>;
}

describe('smoke scenario on every machine profile', () => {
  let out: string;
  let run: Awaited<ReturnType<typeof execa>>;
  let results: Map<string, CaseResult>;
  let junit: Array<{ name: string; properties: { property: Array<{ name: string; value: string }> } }>;
  let consoleOut: string;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'fleetlab-matrix-'));
    run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/smoke.ts', '--machine', 'all', '--workers', '2', '--output', out], {
      cwd: root,
      reject: false,
      timeout: 15 * 60_000,
      env: { CI: '1', NO_COLOR: '1' },
    });
    consoleOut = String(run.stdout);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: CaseResult[] };
    results = new Map(report.results.map((r) => [r.variant, r]));
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['testsuite', 'testcase', 'property'].includes(n) }).parse(await readFile(join(out, 'junit.xml'), 'utf8'));
    junit = xml.testsuites.testsuite[0].testcase;
  }, 15 * 60_000);

  it('runs one case per profile in machines/, and every one passes', () => {
    expect([...results.keys()].sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(listProfiles().sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
  });

  for (const [profile, want] of Object.entries(EXPECTED)) {
    it(`${profile}: ${want.arch}, ${want.firmware}${want.entry ? `, entry ${want.entry.split(' ')[0]}` : ''}`, () => {
      const r = results.get(profile);
      expect(r, `no result for ${profile}`).toBeDefined();
      const attempt = r!.attempts.at(-1)!;
      const steps = attempt.steps.map((s) => `${s.status} ${s.name}${s.error ? `: ${s.error.message}` : ''}`);
      const expected = [
        'passed start main',
        'passed commands and exit codes',
        want.ownHostname ? "passed hostname is the system's own (nothing passes the machine's name)" : 'passed hostname is the machine name',
        `passed architecture is ${want.arch}`,
        `passed firmware: ${want.firmware}`,
        ...(want.entry ? [`passed booted entry ${want.entry}`] : []),
        ...(want.serialShell ? [] : ['passed serial login']),
        want.efiVariable ? 'passed reboot changes the boot id and keeps an EFI variable' : 'passed reboot changes the boot id',
      ];
      expect(steps).toEqual(expected);
      expect(r!.status).toBe('passed');
      // Cross-architecture guests always run under TCG; here KVM does not work at all, and the probe says so.
      const facts = attempt.machines[0]!.facts!;
      expect(facts.arch).toBe(want.arch);
      if (want.arch !== 'x86_64') expect(facts.accel).toBe('tcg');
      const props = Object.fromEntries(junit.find((c) => c.name === `smoke [${profile}]`)!.properties.property.map((p) => [p.name, p.value]));
      expect(props['machine.profile']).toBe(profile);
      expect(props['machine.accel']).toBe(facts.accel);
      expect(props['machine.firmware']).toBe(facts.firmware);
      expect(consoleOut).toContain(`smoke[${profile}] (`);
      expect(consoleOut).toMatch(new RegExp(`smoke\\[${profile}\\] \\([0-9.]+ s; main: ${facts.accel}\\)`));
    });
  }
});
