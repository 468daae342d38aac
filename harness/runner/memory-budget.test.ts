// The memory a case's VMs need, decided before anything boots: clones of a shared snapshot counted at a share of their
// RAM, a fleet the host cannot hold refused with what it needs (through the real CLI: exit 2, no QEMU started).
import { execa } from 'execa';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { admitMemory, caseMemoryNeed, CLONE_RAM_SHARE, HOST_RESERVE_MIB, QEMU_OVERHEAD_MIB, qemuOverheadMiB, TB_DEFAULT_MIB, VGA_MIB } from './memory-budget.ts';
import '../../machines/testbed/register.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import type { PlannedCase } from './plan.ts';
import type { ScenarioDefinition } from './scenario.ts';

const root = join(import.meta.dirname, '../..');
/** The fixture's scenario "sixteen" as the plan has it: 16 x86_64-direct roles. */
const plan = async (): Promise<PlannedCase[]> => {
  const p = await loadProfile('x86_64-direct');
  const profiles = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`node${i}`, p]));
  return [{ id: 'fleet-too-big.ts::sixteen[x86_64-direct]', file: 'harness/runner/fixtures/fleet-too-big.ts', scenario: { name: 'sixteen' } as ScenarioDefinition, variant: 'x86_64-direct', profiles }];
};

describe('memory budget', () => {
  it('a cold machine costs its RAM and QEMU; clones of one shape a share of their RAM; boards nothing', async () => {
    const [c] = await plan();
    expect(caseMemoryNeed(c!, false)).toEqual({ mib: 16 * (256 + QEMU_OVERHEAD_MIB), vms: 16, clones: 0, qemuMiB: [64, 64] });
    expect(caseMemoryNeed(c!, true)).toEqual({ mib: 16 * QEMU_OVERHEAD_MIB + 256 + 15 * 256 * CLONE_RAM_SHARE, vms: 16, clones: 15, qemuMiB: [64, 64] });
    const onBoard = { ...c!, boards: { node0: ['pi-1'] } };
    expect(caseMemoryNeed(onBoard, false).vms).toBe(15);
  });

  it("QEMU's own share is less without a display and with a capped translation cache (x86_64-micro: 32 MiB)", async () => {
    const micro = await loadProfile('x86_64-micro');
    expect([micro.display, micro.qemu.tbSizeMiB]).toEqual(['none', 16]);
    expect(qemuOverheadMiB(micro)).toBe(QEMU_OVERHEAD_MIB - VGA_MIB - (TB_DEFAULT_MIB - 16));
    expect(qemuOverheadMiB(await loadProfile('x86_64-direct'))).toBe(QEMU_OVERHEAD_MIB);
    // A fleet of 256 micro nodes from one snapshot: 256 x 32 MiB of QEMU, one cold 160 MiB guest, 255 clones at 40 MiB.
    const [c] = await plan();
    const fleet = { ...c!, profiles: Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`n${i}`, micro])) };
    expect(caseMemoryNeed(fleet, true)).toEqual({ mib: 256 * 32 + 160 + 255 * 40, vms: 256, clones: 255, qemuMiB: [32, 32] });
    // Mixed: the message gives the range.
    const mixed = { ...c!, profiles: { a: micro, b: await loadProfile('x86_64-direct') } };
    expect(() => admitMemory([mixed], () => false, 100)).toThrow(/its 2 VMs \(guest RAM \+ 32-64 MiB QEMU each;/);
  });

  it('refuses a case the host cannot hold, naming it, what it needs and what the host has', async () => {
    const [c] = await plan();
    const need = caseMemoryNeed(c!, true).mib;
    expect(() => admitMemory([c!], () => true, need + HOST_RESERVE_MIB)).not.toThrow();
    expect(() => admitMemory([c!], () => true, need + HOST_RESERVE_MIB - 1)).toThrow(
      `harness/runner/fixtures/fleet-too-big.ts: scenario "sixteen" [x86_64-direct] needs about ${need} MiB of host memory for its 16 VMs (guest RAM + 64 MiB QEMU each, 15 of them restored from a shared snapshot at 25 % of their RAM), but this host has ${need + HOST_RESERVE_MIB - 1} MiB available`,
    );
    expect(() => admitMemory([c!], () => false, 2048)).toThrow(/its 16 VMs \(guest RAM \+ 64 MiB QEMU each; with snapshot: 'boot' \(or --warm\) machines of one shape share their snapshot's RAM\)/);
  });

  it('fleetlab run: a fleet of 2000 is a configuration error before anything boots', async () => {
    const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/runner/fixtures/fleet-too-big.ts', '--grep', 'too big', '--output', join(root, 'reports', 'fleet-too-big')], { cwd: root, reject: false, timeout: 120_000, env: { CI: '1', NO_COLOR: '1' } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/scenario "too big" \[x86_64-direct\] needs about 640000 MiB of host memory for its 2000 VMs/);
    expect(r.stderr + r.stdout).not.toMatch(/starting qemu/);
  }, 130_000);
});
