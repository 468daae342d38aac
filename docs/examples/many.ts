// Fleets by count and topologies (docs/networks.md#fleets).
import { grid, need, scenario } from 'fleetlab';

// #region sample
export const many = scenario({
  name: 'many',
  machines: { gw: 'x86_64-direct', node: { profile: 'x86_64-direct', count: 16 } }, // node0 … node15
  networks: {
    uplink: ['gw', 'node0'],                                                // a LAN; ['gw', 'node'] would take the whole fleet
    mesh: { topology: grid('node', 4), batman: { origIntervalMs: 1000 } }, // 4 × 4, each linked right and down
  },
  snapshot: 'boot',                                                         // one boots; 15 restore it, sharing its RAM
  async run({ machines: { gw, node }, net, step }) {
    await step('every node has a route to every other', () => net.waitConverged({ timeout: '10m' }));
    net.partition(node.slice(0, 8).map((n) => n.name), node.slice(8).map((n) => n.name)); // the top two rows | the rest
    await gw.succeed(`ping -c 1 ${need(node[0]!, 'net').address('uplink')}`);
  },
});
// #endregion
