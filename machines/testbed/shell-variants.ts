// Testbed variants whose /bin/sh is not busybox: the shells of the guests fleetlab did not build (Debian and Ubuntu's
// dash, NixOS's bash), with their libraries from Debian's packages, so the shell channel is tested on each.
import type { TestbedRecipe } from './recipe.ts';
import { x86_64Testbed } from './x86_64.ts';

/** x86_64 testbed with Debian's dash as /bin/sh (a POSIX sh without `read -t`). */
export const x86_64DashTestbed: TestbedRecipe = { ...x86_64Testbed, name: 'x86_64-dash', extraPackages: [...(x86_64Testbed.extraPackages ?? []), 'dash'], shell: 'dash' };

/** x86_64 testbed with Debian's bash (which every testbed carries, INSTALL_TOOLS) as /bin/sh, as NixOS's backdoor runs. */
export const x86_64BashTestbed: TestbedRecipe = { ...x86_64Testbed, name: 'x86_64-bash', shell: 'bash' };
