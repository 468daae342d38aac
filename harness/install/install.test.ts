// Install flows for real: scenarios/install.ts's ISO install on x86_64-uefi (installer booted from the CD, NixOS's
// manual steps, the CD ejected through QMP, systemd-boot from the disk, then generation 2) and SD image on
// aarch64-uboot (the root grown to the card at the first boot, extlinux), each phase a step in the report and what
// was installed in JUnit; bad options are configuration errors before any QEMU starts; a system the installer lacks
// fails the install phase with nixos-install's message.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { parseSize } from './size.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');

interface Step {
  name: string;
  status: string;
  steps: Step[];
}

describe('install flows', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-install-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('sizes: binary units, bytes; anything else names the field', () => {
    expect(parseSize('4G', 'target.disk')).toBe(4 * 2 ** 30);
    expect(parseSize('512M', 'target.disk')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5GiB', 'target.disk')).toBe(1.5 * 2 ** 30);
    expect(parseSize(2 ** 21, 'target.disk')).toBe(2 ** 21);
    expect(() => parseSize('four gigs', 'target.disk')).toThrow(/target.disk: "four gigs" is no size; write a size like "4G"/);
    expect(() => parseSize('1000', 'card')).toThrow(ConfigurationError);
    expect(() => parseSize(2 ** 20 + 1, 'card')).toThrow(/not a whole number of 512-byte sectors/);
  });

  it('ISO install on x86_64-uefi and SD image on aarch64-uboot end booted from their own disks; bad input fails before anything boots', async () => {
    const out = join(dir, 'run');
    const run = await execa(process.execPath, [cli, 'run', 'scenarios/install.ts', 'harness/install/fixtures/install-faults.ts', '--grep', '^(ISO install: x86_64-uefi|SD image: aarch64-uboot|missing|unparsable|unknown phase|a system the installer) ', '--workers', '2', '--output', out], {
      cwd: root,
      reject: false,
      timeout: 600_000,
      env: { CI: 'true', NO_COLOR: '1' },
    });
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const byName = (n: string) => report.results.find((c: { scenario: string }) => c.scenario === n)?.attempts.at(-1);
    const names = (steps: Step[]): string[] => steps.flatMap((s) => [`${s.status} ${s.name}`, ...names(s.steps)]);
    const detail = run.stdout.slice(-4000);

    const iso = byName('ISO install: x86_64-uefi');
    expect(iso?.status, detail).toBe('passed');
    for (const phase of ['boot installer', 'partition', 'format', 'install', 'eject', 'first boot', 'update to generation 2 and reboot into it']) expect(names(iso.steps)).toContain(`passed ${phase}`);
    expect(iso.properties).toMatchObject({ 'install.kind': 'iso', 'install.disk': '/dev/vda', 'install.root': '/dev/vda2', 'install.bootloader': 'systemd-boot', 'install.firmware': 'uefi-64', 'install.generation': '1' });
    expect(iso.output.join('\n')).toMatch(/installer: installation finished!/);
    const sd = byName('SD image: aarch64-uboot');
    expect(sd?.status, detail).toBe('passed');
    expect(names(sd.steps)).toEqual(expect.arrayContaining(['passed write card', 'passed first boot']));
    expect(sd.properties).toMatchObject({ 'install.kind': 'sd-image', 'install.root': '/dev/vda2', 'install.bootloader': 'extlinux' });
    expect(Number(sd.properties['install.rootBytes'])).toBeGreaterThan(900 * 2 ** 20);

    for (const [name, message] of [
      ['missing ISO', /install.fromIso\(pc\): iso: .*no-such-installer.iso does not exist/],
      ['unparsable disk size', /install.fromIso\(pc\): target.disk: "four gigs" is no size/],
      ['unknown phase', /timeouts: unknown phase "kexec"; phases are: boot installer, partition, format, install, eject, first boot/],
      ['missing SD image', /install.sdImage\(board\): image: .*no-such-sd-image.img does not exist/],
    ] as const) {
      const c = byName(name);
      expect(c?.status, `${name}: ${detail}`).toBe('error');
      expect(c.error.kind).toBe('configuration');
      expect(c.error.message).toMatch(message);
      // Nothing booted: no console log was written for the machine.
      expect(c.steps, name).toEqual([]);
    }
    const wrong = byName('a system the installer does not have');
    expect(wrong?.status, detail).toBe('failed');
    expect(names(wrong.steps)).toEqual(expect.arrayContaining(['passed format', 'failed install']));
    expect(wrong.error.message).toMatch(/nixos-install exited 1:[\s\S]*is not a NixOS system in this installer's store/);
    expect(existsSync(join(out, 'junit.xml'))).toBe(true);
  }, 620_000);
});
