// Testbed variants whose /bin/sh is not busybox: the shells of the guests fleetlab did not build (Debian and Ubuntu's
// dash, NixOS's bash), with their libraries from Debian's packages, so the shell channel is tested on each.
import type { TestbedRecipe } from './recipe.ts';
import { aarch64Testbed } from './aarch64.ts';
import { x86_64Testbed } from './x86_64.ts';

/** x86_64 testbed with Debian's dash as /bin/sh (a POSIX sh without `read -t`). */
export const x86_64DashTestbed: TestbedRecipe = { ...x86_64Testbed, name: 'x86_64-dash', extraPackages: [...(x86_64Testbed.extraPackages ?? []), 'dash'], shell: 'dash' };

/**
 * x86_64 testbed with Debian's bash (which every testbed carries, INSTALL_TOOLS) as /bin/sh and root's login shell,
 * as on NixOS. It is what nixos-anywhere takes over: nixos-anywhere's get-facts.sh runs `setsid --wait true` under the
 * target's `sh`, and busybox-static's ash answers with its own setsid applet (no --wait) before anything on PATH, so
 * the real tool refuses the busybox testbed; under bash, PATH finds the testbed's util-linux-like setsid.
 */
export const x86_64BashTestbed: TestbedRecipe = { ...x86_64Testbed, name: 'x86_64-bash', shell: 'bash' };

/** aarch64 testbed with bash as /bin/sh, for the same reason (nixos-anywhere's target on aarch64). */
export const aarch64BashTestbed: TestbedRecipe = { ...aarch64Testbed, name: 'aarch64-bash', shell: 'bash' };
