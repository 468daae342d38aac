// A testbed variant with Nix: Debian's nix-bin (Nix 2.8) on the root filesystem, so a machine takes closures the way
// a real NixOS machine does (`nix copy --to ssh://`, nix-store --serve on the guest) and its nix-env, nix-store and
// Nix database are real. Its disk images come with their store registered in /nix/var/nix/db, as nixos-install and
// NixOS's make-disk-image register theirs.
import type { TestbedRecipe } from './recipe.ts';
import { x86_64Testbed } from './x86_64.ts';

/**
 * x86_64 testbed with Nix in stage 2 (boot it with `testbed: 'x86_64-nix'` on x86_64-bios, x86_64-uefi or t100ta). Nix
 * and its libraries stay out of the initramfs: a direct kernel boot of this image has no Nix, its disk root does.
 */
export const x86_64NixTestbed: TestbedRecipe = { ...x86_64Testbed, name: 'x86_64-nix', rootPackages: ['nix-bin'] };
