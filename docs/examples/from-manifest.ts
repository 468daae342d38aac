import { fromManifest, loadManifest, scenario } from 'fleetlab';
const result = './result/fleetlab.json';
export const nat = scenario({
  name: 'nat',
  machines: fromManifest(result, ['client', 'router', 'server']),   // { client: { profile, image }, … }
  networks: { inside: ['client', 'router'], outside: ['router', 'server'] },
  async run({ machines: { router } }) {
    const noNat = loadManifest(result).nodes.routerNoNat!.toplevel;
    await router.nixos.switch(noNat, { action: 'test' });
  },
});
