// Matrix tier: the rest of scenarios/install.ts (install.test.ts runs ISO on x86_64-uefi, SD on aarch64-uboot and
// nixos-anywhere on x86_64-uefi): the ISO install on x86_64-bios (GRUB in the MBR) and t100ta (GRUB i386-efi on
// 32-bit UEFI), nixos-anywhere on aarch64-uefi, the SD image on raspi3b (U-Boot from the firmware partition).
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

it('scenarios/install.ts on x86_64-bios, t100ta (ISO), aarch64-uefi (nixos-anywhere) and raspi3b (SD image)', async () => {
  const out = await mkdtemp(join(tmpdir(), 'fleetlab-install-matrix-'));
  try {
    const run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/install.ts', '--grep', '^(ISO install: (x86_64-bios|t100ta)|nixos-anywhere: aarch64-uefi|SD image: raspi3b) ', '--workers', '2', '--output', out], {
      cwd: root,
      reject: false,
      timeout: 900_000,
      env: { CI: 'true', NO_COLOR: '1' },
    });
    expect(run.exitCode, run.stdout.slice(-4000)).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const props = Object.fromEntries(report.results.map((c: { scenario: string; attempts: Array<{ properties: Record<string, string> }> }) => [c.scenario, c.attempts.at(-1)!.properties]));
    expect(props['ISO install: x86_64-bios']).toMatchObject({ 'install.bootloader': 'grub', 'install.firmware': 'bios' });
    expect(props['ISO install: t100ta']).toMatchObject({ 'install.bootloader': 'grub', 'install.firmware': 'uefi-32' });
    expect(props['nixos-anywhere: aarch64-uefi']).toMatchObject({ 'install.kind': 'nixos-anywhere', 'install.bootloader': 'systemd-boot' });
    expect(props['SD image: raspi3b']).toMatchObject({ 'install.kind': 'sd-image', 'install.root': '/dev/mmcblk0p2', 'install.bootloader': 'extlinux' });
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}, 920_000);
