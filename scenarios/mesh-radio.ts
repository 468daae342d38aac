// A batman-adv mesh over radio links (issue #28): four testbed nodes in a row one unit apart, each heard 1.2 units
// away, so a reaches d only through b and c. Then d walks round to a's side: its links to c go down and a new one to
// a comes up, and batman-adv routes a to d directly; then it walks out of everyone's range, and no node reaches it.
// Each link's loss and delay follow from its length (harness/net/radio.ts); the times are JUnit properties.
//   fleetlab run scenarios/mesh-radio.ts
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { need, scenario, type Machine } from 'fleetlab';

const mac = (m: Machine) => need(m, 'net').mac('mesh');
const addr = (m: Machine) => need(m, 'net').address('mesh');

export const meshRadio = scenario({
  name: 'mesh over radio links',
  machines: { a: 'x86_64-direct', b: 'x86_64-direct', c: 'x86_64-direct', d: 'x86_64-direct' },
  networks: {
    mesh: {
      links: [],
      positions: { a: [0, 0], b: [1, 0], c: [2, 0], d: [3, 0] },
      radio: { range: 1.2, lossAtRange: 0.05 },
      batman: true,
    },
  },
  snapshot: 'boot',
  timeout: 10 * 60_000,
  tags: ['network', 'mesh'],
  async run({ machines: { a, b, c, d }, net, step, property }) {
    await step('in a row: a reaches d through b and c', async () => {
      const t0 = performance.now();
      await net.waitConverged({ timeout: 180_000 });
      property('radio.convergence.initial.ms', Math.round(performance.now() - t0));
      assert.equal(net.network('mesh').linkConditions('a', 'c').up, false, 'a and c are 2 apart: out of range');
      assert.equal(await need(a, 'net').mesh.nextHop(mac(d)), mac(b), "a's route to d goes through b");
      // Three lossy hops each way: a ping may be lost; one gets through.
      await a.waitUntilSucceeds(`ping -c 1 -W 2 ${addr(d)}`, { timeout: 60_000 });
    });
    await step("d walks round to a's side: a reaches it directly", async () => {
      const t0 = performance.now();
      net.move('d', 0, 1);
      assert.equal(net.network('mesh').linkConditions('d', 'c').up, false);
      assert.equal(net.network('mesh').linkConditions('a', 'd').up, true);
      await need(a, 'net').waitForMeshRoute(d, { timeout: 120_000 });
      await a.waitUntilSucceeds(`batctl meshif bat0 originators | grep -q '^ \\* ${mac(d)} .* ${mac(d)} \\['`, { timeout: 120_000, intervalMs: 500 });
      property('radio.reroute.ms', Math.round(performance.now() - t0));
      await c.waitUntilSucceeds(`ping -c 1 -W 2 ${addr(d)}`, { timeout: 60_000 });
    });
    await step('d walks away from everyone: nobody reaches it', async () => {
      net.move('d', 10, 10);
      for (const m of [a, b, c]) await m.waitUntilFails(`ping -c 1 -W 1 ${addr(d)}`, { timeout: 60_000 });
      assert.notEqual((await d.execute(`ping -c 1 -W 1 ${addr(a)}`)).exitCode, 0, 'd reaches no one');
    });
  },
});
