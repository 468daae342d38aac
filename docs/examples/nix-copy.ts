// Closures over nix copy (docs/nixos.md).
import { scenario } from 'fleetlab';

// #region sample
export const nixCopy = scenario({
  name: 'update over nix copy',
  machines: { m: { profile: 'x86_64-bios', testbed: 'x86_64-nix' } },
  ssh: true,
  async run({ machines: { m } }) {
    const gen2 = await m.nixos.testbedGeneration({ version: '26.05.2' });  // on NixOS: your toplevel's store path
    const r = await m.nixos.copyClosure(gen2);          // { via: 'nix', copied: [gen2.path], present: [kernel, initrd] }
    await m.nixos.switch(gen2, { action: 'boot' });     // the machine's real nix-env --set
  },
});
// #endregion
