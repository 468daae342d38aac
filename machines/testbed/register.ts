// Registers the testbed recipes with the QEMU provider, which finds testbed images through this and never imports machines/.
import { registerTestbedSource } from '../../harness/qemu/testbed-source.ts';
import { ensureBootDisk } from './boot-disk.ts';
import { ensureTestbed, testbedCached } from './build.ts';
import { buildGeneration } from './generations.ts';
import { ensureInstallableSystem } from './installable.ts';
import { ensureInstallerIso } from './installer-iso.ts';
import { testbedRecipes } from './index.ts';

registerTestbedSource({
  names: () => Object.keys(testbedRecipes),
  image: (name, opts) => ensureTestbed(testbedRecipes[name]!, opts),
  cached: (name) => testbedCached(testbedRecipes[name]!),
  bootDisk: (image, layout, append, opts) => ensureBootDisk(image, layout, append, opts),
  installerIso: (image, layout, append, opts) => ensureInstallerIso(image, layout, append, opts),
  installableSystem: (image, layout, append, opts) => ensureInstallableSystem(image, layout, append, opts),
  sdImage: (image, layout, append, opts) => ensureBootDisk(image, layout, append, { ...opts, sdImage: true }),
  generation: (image, spec, into) => buildGeneration(image, testbedRecipes[image.recipe]!.debArch === 'arm64' ? 'arm64' : 'amd64', spec, into),
});
