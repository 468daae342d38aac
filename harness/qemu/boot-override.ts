// Bring your own image: what a run or a scenario boots instead of a profile's own boot (a NixOS disk image, an
// installer ISO, a kernel and initrd), on any profile's hardware.
import { resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { MachineProfile } from './profile.ts';
import { registeredTestbedSource } from './testbed-source.ts';

/** What to boot instead of the profile's boot; paths are relative to `base` (the cwd, or the scenario's directory). */
export interface BootOverride {
  /** A disk image (raw, qcow2, ...) or an ISO (.iso attaches as a CD-ROM). Machines write to a qcow2 overlay of it. */
  image?: string;
  /** A kernel to boot directly (with `image` as a disk, if given). */
  kernel?: string;
  initrd?: string;
  /** A device tree for the kernel (Arm). */
  dtb?: string;
  /** The kernel command line: replaces it for --kernel, adds to the profile's for testbed boots. */
  append?: string;
  /**
   * Another testbed recipe on the profile's hardware, for a profile that boots fleetlab's testbed: 'x86_64-nix' (the
   * x86_64 testbed with Nix on its root), 'x86_64-dash', 'x86_64-bash', 'aarch64-bash'. The profile's layout and loader stay.
   */
  testbed?: string;
}

/** True when the override changes anything. */
export function hasBootOverride(o: BootOverride | undefined): o is BootOverride {
  return !!o && Object.values(o).some((v) => v !== undefined && v !== '');
}

/** `profile` with its boot replaced as `o` says; `where` names the source (--image, a scenario file) in errors. */
export function applyBootOverride(profile: MachineProfile, o: BootOverride, base: string, where: string): MachineProfile {
  if (!hasBootOverride(o)) return profile;
  const abs = (p: string | undefined) => (p ? resolve(base, p) : undefined);
  const bad = (msg: string) => new ConfigurationError(`${where}: ${msg}`, { details: { profile: profile.name, override: o } });
  if ((o.initrd || o.dtb) && !o.kernel) throw bad('initrd and dtb need a kernel: pass --kernel (or kernel:) as well.');
  if (o.testbed !== undefined) {
    const b = profile.boot;
    if (o.image || o.kernel) throw bad('testbed picks which testbed a testbed profile boots; it cannot go with image or kernel (your own system).');
    if (b.kind !== 'testbed' && b.kind !== 'testbed-disk') throw bad(`testbed: "${o.testbed}": profile ${profile.name} boots no fleetlab testbed (its boot is ${b.kind}).`);
    const source = registeredTestbedSource();
    if (source && !source.names().includes(o.testbed)) throw bad(`testbed: "${o.testbed}" is no testbed recipe (have: ${source.names().join(', ')}).`);
    const arch = (name: string) => name.split('-')[0];
    if (arch(o.testbed) !== arch(b.image)) throw bad(`testbed: "${o.testbed}" is not built for profile ${profile.name}'s architecture (it boots ${b.image}); pick a ${arch(b.image)} testbed.`);
    return applyBootOverride({ ...profile, boot: { ...b, image: o.testbed } }, { ...o, testbed: undefined }, base, where);
  }
  if (o.kernel) {
    return { ...profile, boot: { kind: 'kernel', kernel: abs(o.kernel)!, initrd: abs(o.initrd), dtb: abs(o.dtb), append: o.append ?? '', image: abs(o.image) } };
  }
  if (o.image) {
    if (o.append) throw bad(`--append cannot change the command line of a disk boot (its bootloader has one); boot a --kernel with the disk instead.`);
    return { ...profile, boot: { kind: 'disk', image: abs(o.image)! } };
  }
  const b = profile.boot;
  if (b.kind === 'disk') throw bad(`profile ${profile.name} boots a disk image; --append needs --kernel.`);
  return { ...profile, boot: { ...b, append: `${b.append} ${o.append}`.trim() } };
}
