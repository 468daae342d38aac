// Install flows, each ending with the installed system booted from its own disk, then updated to generation 2 and
// rebooted into it:
// - ISO install (NixOS's manual install driven through the installer's shell, the CD ejected through QMP) on
//   x86_64-bios (GRUB in the MBR), x86_64-uefi (systemd-boot) and t100ta (GRUB i386-efi on 32-bit UEFI);
// - SD image (written to the card, grown to fill it at the first boot, extlinux) on raspi3b and aarch64-uboot.
// The testbed's installer ISO and SD image stand in for NixOS's (testbed.installerIso / testbed.sdImage); pass your
// own ISO and `system` (or `flake`) for a real NixOS installer.
//   fleetlab run scenarios/install.ts
import assert from 'node:assert/strict';
import { scenario, testbed, type Machine, type ScenarioContext } from 'fleetlab';

/** Generation 2 installed for the next boot, a reboot, and generation 2 booted: the installed system updates. */
async function updateToGeneration2(m: Machine, step: ScenarioContext<Record<string, string>>['step']) {
  const gen2 = await m.nixos.testbedGeneration({ version: '26.05.2-installed', etc: { 'installed.conf': 'generation=2\n' } });
  await step('update to generation 2 and reboot into it', async () => {
    await m.nixos.copyClosure(gen2);
    const r = await m.nixos.switch(gen2, { action: 'boot' });
    assert.equal(r.exitCode, 0);
    await m.nixos.expectRebooted(1, () => m.reboot());
    await m.nixos.expectBooted(2);
    assert.equal((await m.succeed('cat /etc/installed.conf')).trim(), 'generation=2');
  }, { timeout: 300_000 });
}

const isoCase = (profile: string, bootloader: 'systemd-boot' | 'grub') =>
  scenario({
    name: `ISO install: ${profile}`,
    // GRUB 2.06's EFI heap cannot hold the installer's kernel and initrd with the profiles' 256 MiB (NixOS's installer wants 1 GiB or more anyway).
    machines: { pc: { profile, memoryMiB: 1024 } },
    start: 'manual',
    snapshot: 'none',
    timeout: 15 * 60_000,
    tags: ['install', 'iso'],
    async run({ machines: { pc }, install, step, property }) {
      const media = await testbed.installerIso(pc);
      const r = await install.fromIso(pc, { iso: media.iso, system: media.system, target: { disk: '1G' }, expect: { bootloader } });
      property('install.hostname', r.hostname);
      assert.equal(r.booted.generation, 1);
      await updateToGeneration2(pc, step);
    },
  });

export const isoBios = isoCase('x86_64-bios', 'grub');
export const isoUefi = isoCase('x86_64-uefi', 'systemd-boot');
export const isoT100ta = isoCase('t100ta', 'grub');

const sdCase = (profile: string) =>
  scenario({
    name: `SD image: ${profile}`,
    machines: { board: profile },
    start: 'manual',
    snapshot: 'none',
    timeout: 15 * 60_000,
    tags: ['install', 'sd-image'],
    async run({ machines: { board }, install, step }) {
      const { image } = await testbed.sdImage(board);
      const r = await install.sdImage(board, { image, card: '1G' });
      assert.ok(r.rootBytes > 700 * 2 ** 20, `the root grew to fill the 1 GiB card: ${r.rootBytes} bytes`);
      await updateToGeneration2(board, step);
    },
  });

export const sdRaspi = sdCase('raspi3b');
export const sdUboot = sdCase('aarch64-uboot');
