// Bring your own image: what a run or a scenario boots instead of a profile's own boot (a NixOS disk image, an
// installer ISO, a kernel and initrd), on any profile's hardware.
import { resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { MachineProfile } from './profile.ts';

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
