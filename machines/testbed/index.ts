// The testbed recipes by name, as profiles' boot.image refers to them.
import type { TestbedRecipe } from './recipe.ts';
import { aarch64Testbed } from './aarch64.ts';
import { x86_64NixTestbed } from './nix.ts';
import { aarch64BashTestbed, x86_64BashTestbed, x86_64DashTestbed } from './shell-variants.ts';
import { x86_64SystemdTestbed } from './systemd.ts';
import { x86_64Testbed } from './x86_64.ts';

/** Every testbed recipe fleetlab can build. */
export const testbedRecipes: Record<string, TestbedRecipe> = {
  x86_64: x86_64Testbed,
  aarch64: aarch64Testbed,
  'x86_64-dash': x86_64DashTestbed,
  'x86_64-bash': x86_64BashTestbed,
  'aarch64-bash': aarch64BashTestbed,
  'x86_64-nix': x86_64NixTestbed,
  'x86_64-systemd': x86_64SystemdTestbed,
};
