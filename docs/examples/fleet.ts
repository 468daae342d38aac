// Networks, partitions and SSH (docs/networks.md).
import { need, scenario } from 'fleetlab';

// #region sample
export const fleet = scenario({
  name: 'fleet',
  machines: { gw: 'x86_64-direct', a: 'x86_64-direct', b: 'x86_64-direct' },
  networks: { lan: ['gw', 'a', 'b'], mesh: { links: [['a', 'b'], ['b', 'gw']], batman: true } },
  ssh: true,                                          // a restricted 127.0.0.1 forward to each machine's port 22
  async run({ machines: { gw, a, b }, net, step, property }) {
    await a.succeed(`ping -c 1 ${need(b, 'net').address('lan')}`);
    net.partition(['a'], ['gw', 'b']);                // cuts every path across the groups, on every network
    net.link('a', 'b', 'lan').down({ oneWay: true }); // one direction of one link
    net.link('a', 'b', 'mesh').set({ loss: 0.3, delayMs: 20, jitterMs: 5, rateKbit: 512 });
    net.heal();                                       // every link up again
    await need(a, 'net').waitForMeshRoute(gw);        // batman-adv: a route to gw's originator
    const ssh = await gw.ssh();                       // ssh2: execute, succeed, upload, download, forward(port)
    property('my.measurement.ms', 123);               // a JUnit <property> of the case
  },
});
// #endregion
