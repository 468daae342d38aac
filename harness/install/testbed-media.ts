// The testbed's install media for a machine: the installer ISO and the SD image fleetlab builds from Debian
// packages, matched to the machine's profile (its testbed image, boot layout and command line). Real fleets pass their
// own: the NixOS installer ISO, the sd-image their flake builds.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { Machine } from '../protocols/machine.ts';
import { join } from 'node:path';
import { sourceDir } from '../package-files.ts';
import { testbedImage, testbedSource } from '../qemu/testbed-source.ts';

function testbedDisk(machine: Machine, what: string) {
  const boot = machine.profile.boot;
  if (boot.kind !== 'testbed-disk') throw new ConfigurationError(`testbed.${what}(${machine.name}): profile ${machine.profile.name} does not boot a testbed disk (boot.kind ${boot.kind}); pass your own image instead`, { details: { field: 'boot.kind', value: boot.kind } });
  return boot;
}

export const testbed = {
  /**
   * The testbed's installer ISO for `machine`: it boots on BIOS, 64-bit and 32-bit UEFI, and carries the system that
   * installs in the machine's profile's boot layout (grub-bios, systemd-boot, grub-efi-ia32): { iso, system }.
   */
  async installerIso(machine: Machine): Promise<{ iso: string; system: string }> {
    const boot = testbedDisk(machine, 'installerIso');
    const log = (l: string) => machine.log.note(l);
    const img = await testbedImage(boot.image, machine.profile.name, log);
    const iso = await testbedSource().installerIso(img, boot.layout, boot.append, { log });
    return { iso: iso.path, system: iso.system };
  },

  /**
   * What nixos-anywhere installs on `machine` (the testbed's stand-ins for a flake's outputs), ready to pass:
   * { command, storePaths: [disko-script, system], kexec }. `command` is fleetlab's nixos-anywhere stand-in
   * (machines/testbed/nixos-anywhere, marked so in its file); use the real one where Nix is.
   */
  async nixosAnywhere(machine: Machine, opts: { disk?: string } = {}): Promise<{ command: string; storePaths: [string, string]; kexec: string; system: string }> {
    const boot = testbedDisk(machine, 'nixosAnywhere');
    const log = (l: string) => machine.log.note(l);
    const img = await testbedImage(boot.image, machine.profile.name, log);
    const s = await testbedSource().installableSystem(img, boot.layout, boot.append, { log, disk: opts.disk });
    return { command: join(sourceDir(import.meta.url), '../../machines/testbed/nixos-anywhere'), storePaths: [s.diskoPath, s.systemPath], kexec: s.kexec, system: s.system };
  },

  /** The boot disk `machine`'s profile boots (an image to put on a bigger disk with useMedia, say). */
  async bootDisk(machine: Machine): Promise<{ image: string }> {
    const boot = testbedDisk(machine, 'bootDisk');
    const log = (l: string) => machine.log.note(l);
    const img = await testbedImage(boot.image, machine.profile.name, log);
    return { image: (await testbedSource().bootDisk(img, boot.layout, boot.append, { log })).path };
  },

  /** The testbed's SD image for `machine` in NixOS's sd-image layout (extlinux, raspi-uboot), which grows its root at the first boot. */
  async sdImage(machine: Machine): Promise<{ image: string }> {
    const boot = testbedDisk(machine, 'sdImage');
    const log = (l: string) => machine.log.note(l);
    const img = await testbedImage(boot.image, machine.profile.name, log);
    const disk = await testbedSource().sdImage(img, boot.layout, boot.append, { log });
    return { image: disk.path };
  },
};
