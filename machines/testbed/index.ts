// The testbed recipes by name, as profiles' boot.image refers to them.
import type { TestbedRecipe } from './recipe.ts';
import { aarch64Testbed } from './aarch64.ts';
import { x86_64Testbed } from './x86_64.ts';

/** Every testbed recipe fleetlab can build. */
export const testbedRecipes: Record<string, TestbedRecipe> = {
  x86_64: x86_64Testbed,
  aarch64: aarch64Testbed,
};
