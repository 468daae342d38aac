// `fleetlab doctor --json` through the real CLI: the acceleration verdict comes from a real probe VM.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QemuMachine } from '../qemu/qemu-machine.ts';

const cli = join(import.meta.dirname, '../cli/main.ts');

describe('fleetlab doctor', () => {
  it('--json reports QEMU, firmware, tools and a probed acceleration verdict with reasons', async () => {
    const r = await execa(process.execPath, [cli, 'doctor', '--json', '--refresh'], { reject: false });
    const report = JSON.parse(r.stdout);
    expect(report.qemu.x86_64.path).toMatch(/qemu-system-x86_64$/);
    expect(report.qemu.x86_64.version).toMatch(/^\d+\.\d+/);
    expect(typeof report.accel.kvm.usable).toBe('boolean');
    expect(report.accel.kvm.reason.length).toBeGreaterThan(10);
    expect(report.accel.tcg.usable).toBe(true);
    if (!existsSync('/dev/kvm')) expect(report.accel.kvm).toMatchObject({ usable: false, reason: expect.stringContaining('/dev/kvm') });
    // A probe that says "not usable" must have seen QEMU fail or hang, not guessed.
    if (existsSync('/dev/kvm') && !report.accel.kvm.usable) expect(report.accel.kvm.reason).toMatch(/exited|printed nothing|did not reach userspace|cannot open/);
    expect(report.accel.auto).toBe(report.accel.kvm.usable ? 'kvm' : 'tcg');
    expect(report.firmware.find((f: { package: string }) => f.package === 'ovmf').found).toBe(true);
  });

  it('a machine with accel auto uses the probe answer and says why', async () => {
    const report = JSON.parse((await execa(process.execPath, [cli, 'doctor', '--json'])).stdout);
    const m = await QemuMachine.fromProfile('x86_64-direct', { name: 'accelcheck' });
    try {
      await m.start();
      expect(m.facts!.accel).toBe(report.accel.auto);
      if (!report.accel.kvm.usable) expect(m.facts!.accelReason).toMatch(/falling back to TCG because KVM is not usable/);
    } finally {
      await m.stop();
    }
  });
});
