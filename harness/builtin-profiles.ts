// fleetlab's own machine profiles as data, for user profiles that extend one: `import { profiles } from 'fleetlab'`
// (or `import base from 'fleetlab/machines/x86_64-direct'`), then `extendProfile(profiles['x86_64-direct'], {...})`.
import aarch64Uboot from '../machines/aarch64-uboot.ts';
import aarch64Uefi from '../machines/aarch64-uefi.ts';
import raspi3b from '../machines/raspi3b.ts';
import t100ta from '../machines/t100ta.ts';
import x86_64Bios from '../machines/x86_64-bios.ts';
import x86_64Direct from '../machines/x86_64-direct.ts';
import x86_64Uefi from '../machines/x86_64-uefi.ts';
import type { MachineProfileInput } from './qemu/profile.ts';

/** The built-in profiles by name, unvalidated input as their files declare them. */
export const profiles: Readonly<Record<string, MachineProfileInput>> = {
  'x86_64-direct': x86_64Direct,
  'x86_64-bios': x86_64Bios,
  'x86_64-uefi': x86_64Uefi,
  t100ta,
  'aarch64-uefi': aarch64Uefi,
  'aarch64-uboot': aarch64Uboot,
  raspi3b,
};
