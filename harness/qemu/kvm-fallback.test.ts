// Acceleration that tells the truth: the probe's verdict matches what machines then see, and a KVM verdict that went
// stale (KVM passed the probe, then hangs a machine) costs one restart under TCG, not a failed run. The stale host is
// played by a stand-in QEMU wrapper (fixtures/kvm-standin-qemu.sh) run through FLEETLAB_QEMU_WRAPPER.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { QemuMachine } from './qemu-machine.ts';

const root = join(import.meta.dirname, '../..');
const standin = join(import.meta.dirname, 'fixtures/kvm-standin-qemu.sh');
const fleetlab = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd: root, reject: false, timeout: 300_000, env: { CI: '1', NO_COLOR: '1', ...env } });
const kvmNode = existsSync('/dev/kvm');

type Prop = { '@_name': string; '@_value': string };
async function caseProperties(dir: string): Promise<Record<string, string>> {
  const xml = new XMLParser({ ignoreAttributes: false }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
  const tc = xml.testsuites.testsuite.testcase;
  const props = ([] as Prop[]).concat(tc.properties.property);
  return Object.fromEntries(props.map((p) => [p['@_name'], p['@_value']]));
}

describe('acceleration', () => {
  it("the probe's verdict matches reality: usable means a KVM machine reaches its shell, unusable means --accel kvm fails fast naming KVM", async () => {
    const report = JSON.parse((await fleetlab(['doctor', '--json'])).stdout);
    const m = await QemuMachine.fromProfile('x86_64-direct', { name: 'kvmtruth', accel: 'kvm' });
    try {
      if (report.accel.kvm.usable) {
        await m.start();
        await m.waitForShell({ timeout: 30_000 });
        expect(m.facts!.accel).toBe('kvm');
      } else {
        const t0 = performance.now();
        const err = await m.start().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(Error);
        expect((err as { kind: string }).kind).toBe('infrastructure');
        expect((err as Error).message).toMatch(/^KVM: machine kvmtruth/);
        expect(performance.now() - t0).toBeLessThan(30_000);
      }
    } finally {
      await m.stop();
    }
  });

  it.skipIf(!kvmNode)('a machine from auto that stays silent under KVM is restarted under TCG once, says so in JUnit and the console, and corrects the cache', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-kvmfb-'));
    const env = { FLEETLAB_QEMU_WRAPPER: standin };
    // The probe runs for real through the stand-in, which plays a healthy KVM: the verdict is "usable".
    const probe = JSON.parse((await fleetlab(['doctor', '--json', '--refresh'], { ...env, FLEETLAB_STANDIN_KVM: 'healthy' })).stdout);
    expect(probe.accel.kvm).toMatchObject({ usable: true, reason: expect.stringMatching(/reached userspace under -accel kvm -cpu host/) });
    // Then the host goes bad: QEMU under KVM runs but the guest prints nothing.
    const run = await fleetlab(['run', 'scenarios/smoke.ts', '--output', join(dir, 'auto')], { ...env, FLEETLAB_STANDIN_KVM: 'silent' });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/main: tcg after a KVM fallback/);
    expect(run.stdout).toMatch(/auto chose KVM \(its probe had passed\), but under -accel kvm the guest printed nothing on any console for 20 s; restarted under TCG/);
    const props = await caseProperties(join(dir, 'auto'));
    expect(props['machine.accel']).toBe('tcg');
    expect(props['machine.accel.reason']).toMatch(/restarted under TCG/);
    const after = JSON.parse((await fleetlab(['doctor', '--json'], env)).stdout);
    expect(after.accel.kvm).toMatchObject({ usable: false, reason: expect.stringMatching(/machine main \(profile x86_64-direct\): under -accel kvm the guest printed nothing/) });
    expect(after.accel.auto).toBe('tcg');
  }, 240_000);

  it.skipIf(!kvmNode)('an explicit --accel kvm never falls back: a silent guest is an infrastructure error naming KVM and what was seen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-kvmfb-'));
    const run = await fleetlab(['run', 'scenarios/smoke.ts', '--accel', 'kvm', '--output', dir], { FLEETLAB_QEMU_WRAPPER: standin, FLEETLAB_STANDIN_KVM: 'silent' });
    expect(run.exitCode, run.stdout + run.stderr).toBe(3);
    const junit = await readFile(join(dir, 'junit.xml'), 'utf8');
    expect(junit).toMatch(/<error message="KVM: machine main \(profile x86_64-direct\) was asked to run under KVM \(requested kvm\), but under -accel kvm the guest printed nothing on any console for 20 s/);
  }, 240_000);
});
