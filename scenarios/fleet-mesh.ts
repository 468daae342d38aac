// A fleet on a batman-adv mesh, declared by count and topology: N NixOS-shaped testbed nodes (x86_64-bios: one boots,
// the rest restore its snapshot and share its RAM) on a grid or a ring at batman-adv's own OGM interval (1 s), its
// broadcasts delivered in 100 ms windows (docs/networks.md: fewer wakeups of idle guests). Each
// converges (every node's originator table routes to every other node: exactly N - 1 routes), idles while its cost
// is measured (each node's share of a core and PSS), splits into two islands along the middle (once the islands'
// routes have settled, every node's broadcast pings are answered by each node of its island over batman-adv's routes
// and by none from across), heals (every node answered by every other), and takes a staged rollout (waves 1, 10 %, the rest) of a
// broken generation: the first wave fails its health check and is rolled back, no other node is touched. The times,
// the idle cost and the host's peak memory (host.memory.peak.mib) are JUnit properties.
//   fleetlab run scenarios/fleet-mesh.ts                    a 64-node grid, a 16-node grid and a 16-node ring
//   fleetlab run scenarios/fleet-mesh.ts --grep 'of 16'     the two the test suite runs (harness/net/fleet.test.ts)
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { grid, idleUsage, inSlots, need, ring, rollout, scenario, type Machine, type ScenarioContext, type Topology } from 'fleetlab';

/** Every node's address on the mesh. */
const addr = (m: Machine) => need(m, 'net').address('mesh');

/**
 * Waits until `m` has had an answer from every node of `want` and never one from `never`. The probe is one ping
 * process in the guest (a fork per peer costs a starved TCG guest more than the pings): it pings the mesh's broadcast
 * address for 5 s, again and again until every node of `want` has answered or 4 minutes have passed. batman-adv floods
 * each broadcast through the island; every node that hears it answers by unicast over batman-adv's routes. So an
 * answer from `p` proves the flood reached `p` and `p`'s route back to `m`; with every node probing, every route in
 * both directions is proved. An answer from a node of `never`, in any round, is a route across the cut. The nodes
 * answer broadcast pings once `answerBroadcastPings` ran on them.
 */
async function reachesExactly(m: Machine, want: Machine[], never: Machine[]): Promise<void> {
  const wanted = want.map(addr).join(' ');
  const script = [
    `end=$(($(date +%s) + 240)); heard=`,
    'while :; do',
    '  heard="$heard $(ping -w 5 -I bat0 255.255.255.255 2>/dev/null | sed -n "s/^[0-9]* bytes from \\([0-9.]*\\):.*/\\1/p" | sort -u | tr "\\n" " ")"',
    `  left=; for a in ${wanted}; do case " $heard " in *" $a "*) ;; *) left="$left $a" ;; esac; done`,
    '  [ -n "$left" ] && [ "$(date +%s)" -lt "$end" ] || break',
    'done',
    'echo "heard:$heard"',
  ].join('\n');
  const r = await m.execute(script, { timeout: 6 * 60_000 });
  const line = /^heard:(.*)$/m.exec(r.stdout);
  assert.ok(line, `${m.name}'s probe printed no result: ${r.stdout}`);
  const heard = new Set(line[1]!.split(' ').filter(Boolean));
  assert.deepEqual(never.filter((x) => heard.has(addr(x))).map((x) => x.name), [], `${m.name} must reach no node across the partition`);
  const missing = want.filter((x) => !heard.has(addr(x)));
  if (missing.length > 0) assert.fail(`${m.name} does not reach ${missing.map((x) => x.name).join(', ')} (of ${want.length}) in 4 min\n${await meshState(m, missing)}`);
}

/** Lets `m` answer pings to a broadcast address (Linux ignores them by default: net.ipv4.icmp_echo_ignore_broadcasts). */
const answerBroadcastPings = async (m: Machine) => void (await m.succeed('echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts'));

/** What `m` knows of `to` when it cannot reach them: its ARP entries and batman-adv's routes and translation table. */
async function meshState(m: Machine, to: Machine[]): Promise<string> {
  const r = await m.execute(`ip neigh show dev bat0; batctl meshif bat0 originators -H; batctl meshif bat0 transglobal -H`, { timeout: 60_000 }).catch((e: Error) => ({ stdout: `(not read: ${e.message})` }));
  return `${m.name}'s ARP entries, originators and global translation table (looking for ${to.map((x) => `${x.name} ${addr(x)}`).join(', ')}):\n${r.stdout}`;
}

/** batman-adv's originator table on `m`: how many originators it has a best route ("*") to. */
async function routes(m: Machine): Promise<number> {
  return Number((await m.succeed("batctl meshif bat0 originators -H | grep -c '^ \\*' || true")).trim());
}

type Fleet = { node: { profile: string; count: number } };

/** The scenario body for a fleet of `n` on `topology`. */
function fleetMesh(n: number) {
  return async ({ machines: { node }, net, step, property, signal }: ScenarioContext<Fleet>) => {
    const t0 = performance.now();
    await step(`the mesh converges: every node routes to the ${n - 1} others`, async () => {
      await net.waitConverged({ timeout: 15 * 60_000 });
      property('fleet.convergence.initial.ms', Math.round(performance.now() - t0));
      // Exactly n - 1 routes each (no originator that is not there), read 8 nodes at a time.
      await inSlots(node, 8, async (m) => assert.equal(await routes(m), n - 1, `${m.name}'s routes`));
    });
    await step('idle for 10 s: what each node costs the host', async () => {
      const u = await idleUsage(node, { seconds: 10, switchProcess: net.switchProcess, signal });
      property('fleet.idle.cpu.pct', u.cpuPct.mean);
      property('fleet.idle.cpu.max.pct', u.cpuPct.max);
      property('fleet.idle.pss.mib', u.pssMiB.mean);
      property('fleet.idle.switch.cpu.pct', u.switchCpuPct!);
    });
    const [west, east] = [node.slice(0, n / 2), node.slice(n / 2)];
    await step(`partition into two islands of ${n / 2}: each node reaches exactly its island`, async () => {
      const t = performance.now();
      await inSlots(node, 8, answerBroadcastPings);
      net.partition(west.map((m) => m.name), east.map((m) => m.name));
      // batman-adv reroutes inside each island (routes that went across the cut move), then every node is probed.
      await net.waitConverged({ timeout: 10 * 60_000 });
      for (const [island, other] of [[west, east], [east, west]] as const) {
        await inSlots(island, 8, (m) => reachesExactly(m, island.filter((x) => x !== m), other));
      }
      property('fleet.partition.settled.ms', Math.round(performance.now() - t));
    });
    await step('heal: every node reaches every other again', async () => {
      const t = performance.now();
      net.heal();
      await net.waitConverged({ timeout: 10 * 60_000 });
      await inSlots(node, 8, (m) => reachesExactly(m, node.filter((x) => x !== m), []));
      property('fleet.convergence.heal.ms', Math.round(performance.now() - t));
    });
    // A generation whose service fails: healthy means no failed unit and a route to every other node.
    const broken = await node[0]!.nixos.testbedGeneration({ version: '26.05.9-broken', services: [{ name: 'mesh-agent', command: 'echo mesh-agent: cannot read its key >&2; exit 1' }] });
    const healthCheck = async (m: Machine) => {
      const failed = await m.nixos.failedUnits();
      assert.deepEqual(failed, [], `${m.name}: failed units`);
      assert.equal(await routes(m), n - 1, `${m.name}'s routes`);
    };
    const r = await step('a broken generation rolled out in waves of 1, 10 % and the rest halts after the first', () => rollout(node, broken, { waves: [1, '10%', '100%'], parallel: 8, healthCheck, step }));
    assert.equal(r.completed, false);
    assert.deepEqual(r.haltedAt?.wave, 0);
    assert.deepEqual(r.updated, ['node0']);
    assert.deepEqual(r.rolledBack, ['node0']);
    assert.match(r.machines[0]!.why ?? '', /failed units/);
    property('rollout.halted.wave', r.haltedAt!.wave + 1);
    property('rollout.switch.ms', r.machines[0]!.switchMs!);
    property('rollout.rollback.ms', r.machines[0]!.rollbackMs!);
    await step('only the first wave was touched: every node on the generation it had, node0 healthy again', async () => {
      for (const x of r.machines) assert.equal(x.generationAfter, x.generationBefore, `${x.name}'s generation`);
      assert.deepEqual(r.machines.slice(1).filter((x) => x.wave !== undefined || x.switchMs !== undefined), []);
      const gens = await Promise.all(node.map(async (m) => [m.name, (await m.nixos.current()).generation] as const));
      assert.deepEqual(gens, r.machines.map((x) => [x.name, x.generationBefore]));
      await healthCheck(node[0]!);
    });
  };
}

/** A fleet of `n` x86_64-bios nodes (NixOS-shaped: a system profile and GRUB) on `topology` of the role 'node'. */
function fleet(name: string, n: number, topology: Topology, timeoutMin: number, tags: string[]) {
  return scenario({
    name,
    machines: { node: { profile: 'x86_64-bios', count: n } },
    networks: { mesh: { topology, batman: { origIntervalMs: 1000 }, broadcastWindowMs: 100 } },
    snapshot: 'boot',
    timeout: timeoutMin * 60_000,
    tags: ['network', 'mesh', 'fleet', ...tags],
    run: fleetMesh(n),
  });
}

export const grid64 = fleet('fleet mesh: grid of 64', 64, grid('node', 8), 60, ['fleet-64']);
export const grid16 = fleet('fleet mesh: grid of 16', 16, grid('node', 4), 15, []);
export const ring16 = fleet('fleet mesh: ring of 16', 16, ring('node'), 15, []);
