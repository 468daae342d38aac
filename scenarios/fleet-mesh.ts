// A fleet on a batman-adv mesh, declared by count and topology: N testbed nodes (one boots, the rest restore its
// snapshot and share its RAM) on a grid or a ring at batman-adv's own OGM interval (1 s). Each converges (every
// node's originator table routes to every other node: exactly N - 1 routes), splits into two islands along the
// middle (every node reaches exactly the nodes of its island, none across), and heals. The times are JUnit properties.
//   fleetlab run scenarios/fleet-mesh.ts                    a 64-node grid, a 16-node grid and a 16-node ring
//   fleetlab run scenarios/fleet-mesh.ts --grep 'of 16'     the two the test suite runs (harness/net/fleet.test.ts)
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { grid, need, ring, scenario, type Machine, type ScenarioContext, type Topology } from 'fleetlab';

/** Every node's addresses on the mesh, and a probe of which of `to` a node reaches (one round trip, pings in parallel). */
const addr = (m: Machine) => need(m, 'net').address('mesh');
async function reached(from: Machine, to: Machine[]): Promise<Set<string>> {
  const pings = to.map((m) => `(ping -c 1 -W 2 ${addr(m)} >/dev/null 2>&1 && echo ${m.name}) &`).join('\n');
  const r = await from.execute(`${pings}\nwait`, { timeout: 60_000 });
  return new Set(r.stdout.split('\n').filter(Boolean));
}

/** batman-adv's originator table on `m`: how many originators it has a best route ("*") to. */
async function routes(m: Machine): Promise<number> {
  return Number((await m.succeed("batctl meshif bat0 originators -H | grep -c '^ \\*' || true")).trim());
}

type Fleet = { node: { profile: string; count: number } };

/** The scenario body for a fleet of `n` on `topology`. */
function fleetMesh(n: number) {
  return async ({ machines: { node }, net, step, property }: ScenarioContext<Fleet>) => {
    const t0 = performance.now();
    await step(`the mesh converges: every node routes to the ${n - 1} others`, async () => {
      for (const m of node) await m.waitUntilSucceeds(`[ "$(batctl meshif bat0 originators -H | grep -c '^ \\*')" -ge ${n - 1} ]`, { timeout: 15 * 60_000, intervalMs: 1000 });
      property('fleet.convergence.initial.ms', Math.round(performance.now() - t0));
      for (const m of node) assert.equal(await routes(m), n - 1, `${m.name}'s routes`);
    });
    const [west, east] = [node.slice(0, n / 2), node.slice(n / 2)];
    await step(`partition into two islands of ${n / 2}: each node reaches exactly its island`, async () => {
      const t = performance.now();
      net.partition(west.map((m) => m.name), east.map((m) => m.name));
      for (const [island, other] of [[west, east], [east, west]] as const) {
        for (const m of island) {
          const want = island.filter((x) => x !== m).map((x) => x.name).sort();
          // Routes inside an island that went across the cut move; until then a node misses some of its island.
          for (;;) {
            const got = await reached(m, [...island.filter((x) => x !== m), ...other]);
            const across = other.filter((x) => got.has(x.name)).map((x) => x.name);
            assert.deepEqual(across, [], `${m.name} must reach no node across the partition`);
            if ([...got].sort().join() === want.join()) break;
            if (performance.now() - t > 5 * 60_000) assert.fail(`${m.name} reaches ${[...got].sort().join(', ')}; its island is ${want.join(', ')}`);
          }
        }
      }
      property('fleet.partition.settled.ms', Math.round(performance.now() - t));
    });
    await step('heal: every node reaches every other again', async () => {
      const t = performance.now();
      net.heal();
      for (const m of node) {
        const others = node.filter((x) => x !== m);
        for (;;) {
          if ((await reached(m, others)).size === others.length) break;
          if (performance.now() - t > 10 * 60_000) assert.fail(`${m.name} does not reach every node 10 minutes after the heal`);
        }
      }
      property('fleet.convergence.heal.ms', Math.round(performance.now() - t));
    });
  };
}

/** A fleet of `n` x86_64-direct nodes on `topology` of the role 'node'. */
function fleet(name: string, n: number, topology: Topology, timeoutMin: number, tags: string[]) {
  return scenario({
    name,
    machines: { node: { profile: 'x86_64-direct', count: n } },
    networks: { mesh: { topology, batman: { origIntervalMs: 1000 } } },
    snapshot: 'boot',
    timeout: timeoutMin * 60_000,
    tags: ['network', 'mesh', 'fleet', ...tags],
    run: fleetMesh(n),
  });
}

export const grid64 = fleet('fleet mesh: grid of 64', 64, grid('node', 8), 40, ['fleet-64']);
export const grid16 = fleet('fleet mesh: grid of 16', 16, grid('node', 4), 15, []);
export const ring16 = fleet('fleet mesh: ring of 16', 16, ring('node'), 15, []);
