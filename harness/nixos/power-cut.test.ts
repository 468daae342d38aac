// scenarios/power-cut.ts through the real CLI: the power cut at four points of an update, on one GRUB, one
// systemd-boot and one extlinux machine. The old generation must boot until the new menu is whole, the new one
// from the activation on; profile links and boot files stay whole; synced data survives.
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from './run-scenario.ts';

const MACHINES = ['x86_64-bios', 'x86_64-uefi', 'aarch64-uboot'];
const POINTS = ['after-copy', 'after-profile', 'bootloader-write', 'activation'];

describe('power cuts during an update', () => {
  let run: Awaited<ReturnType<typeof runScenario>>;
  beforeAll(async () => {
    run = await runScenario('scenarios/power-cut.ts', [...MACHINES.flatMap((m) => ['--machine', m]), '--workers', '1'], 900_000);
  }, 960_000);

  it('every machine boots a complete generation after every cut', () => {
    expect(run.cases.map((c) => [c.name, c.failure ?? 'passed']), run.output.slice(-4000)).toEqual(MACHINES.map((m) => [`power cut during an update [${m}]`, 'passed']));
  });

  for (const point of POINTS) {
    it(`cut ${point}: ${point === 'activation' ? 'the new' : 'the old'} generation booted on each boot loader`, () => {
      for (const c of run.cases) {
        // Generation 1 boots after every cut before the activation; the profile has grown to 4 by the activation cut
        // (after-copy adds no generation), and that one boots.
        expect(Number(c.properties[`cut.${point}.booted`]), c.name).toBe(point === 'activation' ? 4 : 1);
      }
    });
  }
});
