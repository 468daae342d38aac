// Install flows, each ending with the installed system booted from its own disk, then updated to generation 2 and
// rebooted into it:
// - ISO install (NixOS's manual install driven through the installer's shell, the CD ejected through QMP) on
//   x86_64-bios (GRUB in the MBR), x86_64-uefi (systemd-boot) and t100ta (GRUB i386-efi on 32-bit UEFI);
// - nixos-anywhere (kexec into the installer over SSH, disko, install, reboot) from a running testbed on x86_64-uefi
//   and aarch64-uefi;
// - SD image (written to the card, grown to fill it at the first boot, extlinux) on raspi3b and aarch64-uboot.
// The testbed's installer ISO, SD image and nixos-anywhere inputs stand in for NixOS's (testbed.installerIso,
// testbed.sdImage, testbed.nixosAnywhere, whose command is a stand-in for nixos-anywhere); pass your own ISO and
// `system` (or `flake`), your sd-image, your nixos-anywhere and flake for real NixOS.
//   fleetlab run scenarios/install.ts
import assert from 'node:assert/strict';
import { need, scenario, testbed, type Machine, type ScenarioContext } from 'fleetlab';

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

const anywhereCase = (profile: string) =>
  scenario({
    name: `nixos-anywhere: ${profile}`,
    // nixos-anywhere's kexec installer needs about 1.5 GB; the running testbed is the machine it takes over, the one
    // whose sh is bash as on NixOS (nixos-anywhere refuses a target whose sh has no `setsid --wait`, as busybox's has not).
    machines: { host: { profile, memoryMiB: 1536, testbed: profile.startsWith('x86_64') ? 'x86_64-bash' : 'aarch64-bash' } },
    ssh: true,
    start: 'manual',
    snapshot: 'none',
    timeout: 15 * 60_000,
    tags: ['install', 'nixos-anywhere'],
    async run({ machines: { host }, install, step, property }) {
      // The testbed running from its usual disk, on a 1 GiB disk (its image alone leaves no room for a second system).
      await need(host, 'media').useMedia({ disk: { ...(await testbed.bootDisk(host)), format: 'raw', size: 2 ** 30 } });
      // FLEETLAB_NIXOS_ANYWHERE=<nixos-anywhere's src/nixos-anywhere.sh> runs the real script (unmodified, its
      // get-facts.sh beside it, this host's Nix for nix copy) on x86_64 instead of fleetlab's stand-in.
      const real = profile.startsWith('x86_64') ? process.env.FLEETLAB_NIXOS_ANYWHERE : undefined;
      const na = await testbed.nixosAnywhere(host, { hostStore: !!real });
      property('nixos-anywhere.command', real ? 'real' : 'stand-in');
      const r = await install.nixosAnywhere(host, { command: real ?? na.command, storePaths: na.storePaths, kexec: na.kexec });
      assert.ok(r.rebooted);
      assert.equal(r.booted.generation, 1);
      assert.equal(r.booted.toplevel, na.system);
      await updateToGeneration2(host, step);
    },
  });

export const anywhereUefi = anywhereCase('x86_64-uefi');
export const anywhereArm = anywhereCase('aarch64-uefi');

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
