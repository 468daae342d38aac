// The testbed's install media for a machine: the installer ISO and the SD image fleetlab builds from Debian
// packages, matched to the machine's profile (its testbed image, boot layout and command line). Real fleets pass their
// own: the NixOS installer ISO, the sd-image their flake builds.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { Machine } from '../protocols/machine.ts';
import { join } from 'node:path';
import { sourceDir } from '../package-files.ts';
import { testbedImage, testbedSource } from '../qemu/testbed-source.ts';
import { runTool } from '../qemu/host-packages.ts';
import { chrootStore, hostNix, nixEnv, registerClosure } from '../nixos/nix-store.ts';

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
   * `hostStore: true` readies them for the real nixos-anywhere (x86_64 only): the system's closure and the disko
   * script copied into this host's Nix store (/nix/store, registered: nix copy reads them from there), storePaths
   * naming them there, and a kexec installer with Nix in it (x86_64-nix's nix-bin), which nix copy sends them to.
   */
  async nixosAnywhere(machine: Machine, opts: { disk?: string; hostStore?: boolean } = {}): Promise<{ command: string; storePaths: [string, string]; kexec: string; system: string }> {
    const boot = testbedDisk(machine, 'nixosAnywhere');
    const log = (l: string) => machine.log.note(l);
    const img = await testbedImage(boot.image, machine.profile.name, log);
    if (opts.hostStore && !img.recipe.startsWith('x86_64')) throw new ConfigurationError(`testbed.nixosAnywhere(${machine.name}, { hostStore: true }): the kexec installer with Nix is built for the x86_64 testbeds; ${machine.profile.name} runs ${img.recipe}`, { details: { field: 'hostStore', value: true } });
    const nix = opts.hostStore ? await testbedImage('x86_64-nix', machine.profile.name, log) : undefined;
    const s = await testbedSource().installableSystem(img, boot.layout, boot.append, { log, disk: opts.disk, nix });
    const command = join(sourceDir(import.meta.url), '../../machines/testbed/nixos-anywhere');
    if (!opts.hostStore) return { command, storePaths: [s.diskoPath, s.systemPath], kexec: s.kexec, system: s.system };
    if (!(await hostNix())) throw new ConfigurationError(`testbed.nixosAnywhere(${machine.name}, { hostStore: true }) needs Nix on this host: apt-get install nix-bin (scripts/setup.sh does)`, { details: { tool: 'nix', package: 'nix-bin' } });
    const paths = [...new Set([...s.closure, s.disko])];
    await registerClosure(s.storeRoot, paths);
    await runTool('nix', ['copy', '--no-check-sigs', '--from', chrootStore(s.storeRoot), s.system, s.disko], { env: nixEnv(), purpose: `copying the testbed's system and disko script into this host's Nix store for nixos-anywhere (${machine.name})`, failure: 'nix copy into /nix/store failed' });
    log(`testbed: ${s.system} and ${s.disko} are in this host's Nix store`);
    return { command, storePaths: [s.disko, s.system], kexec: s.kexec, system: s.system };
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
