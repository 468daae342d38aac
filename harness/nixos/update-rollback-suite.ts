// scenarios/update-rollback.ts through the real CLI on every boot loader fleetlab emulates: GRUB on BIOS
// (x86_64-bios) and 32-bit UEFI (t100ta), systemd-boot on x86_64 and aarch64 UEFI, extlinux under U-Boot
// (aarch64-uboot, and raspi3b's U-Boot from the Pi firmware). Each case installs generation 2 and boots it, rolls
// back, picks generation 2 in the real menu, sees exit code 4 for a failing unit, and watches a broken generation
// roll back by the boot loader's own path. Split in two files (x86, Arm) so the suite's two workers share them.
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario, type RunCase } from './run-scenario.ts';

export function updateRollbackSuite(MACHINES: string[]): void {
describe(`update and rollback on ${MACHINES.join(', ')}`, () => {
  let run: Awaited<ReturnType<typeof runScenario>>;
  const byMachine = (m: string): RunCase => run.cases.find((c) => c.name.includes(`[${m}]`))!;
  beforeAll(async () => {
    run = await runScenario('scenarios/update-rollback.ts', [...MACHINES.flatMap((m) => ['--machine', m]), '--workers', '1'], 1_500_000);
  }, 1_560_000);

  it('passes on every machine', () => {
    expect(run.cases.map((c) => [c.name, c.failure ?? 'passed']), run.output.slice(-4000)).toEqual(MACHINES.map((m) => [`update and rollback [${m}]`, 'passed']));
    expect(run.exitCode).toBe(0);
  });

  it('reports the boot loader and which rollback path fired', () => {
    const expected: Record<string, [string, string]> = {
      'x86_64-bios': ['grub', 'magic-rollback'],
      't100ta': ['grub', 'magic-rollback'],
      'x86_64-uefi': ['systemd-boot', 'boot-counting'],
      'aarch64-uefi': ['systemd-boot', 'boot-counting'],
      'aarch64-uboot': ['extlinux', 'magic-rollback'],
      raspi3b: ['extlinux', 'magic-rollback'],
    };
    for (const m of MACHINES) {
      const p = byMachine(m).properties;
      expect([p['nixos.bootloader'], p['rollback.path']], m).toEqual(expected[m]);
    }
  });

  it('boot counting took reboots of its own: the broken generation was tried until no tries were left', () => {
    for (const m of ['x86_64-uefi', 'aarch64-uefi'].filter((x) => MACHINES.includes(x))) expect(byMachine(m).properties['rollback.no-init.path'], `${m}: a generation without init`).toBe('boot-counting');
    for (const m of ['x86_64-bios', 't100ta'].filter((x) => MACHINES.includes(x))) expect(byMachine(m).properties['rollback.no-init.path'], `${m}: a generation without init`).toBe('grub-one-shot');
    for (const m of ['aarch64-uboot', 'raspi3b'].filter((x) => MACHINES.includes(x))) expect(byMachine(m).properties['rollback.no-init.path'], `${m}: a generation without init`).toBe('menu-rescue');
    for (const m of ['x86_64-uefi', 'aarch64-uefi'].filter((x) => MACHINES.includes(x))) expect(Number(byMachine(m).properties['rollback.boots']), m).toBeGreaterThanOrEqual(6);
  });
});
}
