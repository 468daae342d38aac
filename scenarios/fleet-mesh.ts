// A fleet on a batman-adv mesh, declared by count and topology: N NixOS-shaped testbed nodes (x86_64-bios: one boots,
// the rest restore its snapshot and share its RAM) on a grid or a ring at batman-adv's own OGM interval (1 s), its
// broadcasts delivered in 100 ms windows (docs/networks.md: fewer wakeups of idle guests). Each
// converges (every node's originator table routes to every other node: exactly N - 1 routes), idles while its cost
// is measured (each node's share of a core and PSS), splits into two islands along the middle (once the islands'
// routes have settled, each pair of nodes of an island has an answer and no pair across has: every pair is pinged
// once, by one of its nodes; pings lost to a busy host are sent again), heals (every pair answers), and takes a
// staged rollout (waves 1, 10 %, the rest) of a broken generation: the first wave fails its health check and is
// rolled back, no other node is touched. The times, the idle cost and the host's peak memory (host.memory.peak.mib)
// are JUnit properties.
//   fleetlab run scenarios/fleet-mesh.ts                    a 64-node grid, a 16-node grid and a 16-node ring
//   fleetlab run scenarios/fleet-mesh.ts --grep 'of 16'     the two the test suite runs (harness/net/fleet.test.ts)
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { grid, idleUsage, inSlots, need, ring, rollout, scenario, type Machine, type ScenarioContext, type Topology } from 'fleetlab';

/** Every node's address on the mesh. */
const addr = (m: Machine) => need(m, 'net').address('mesh');

/**
 * Waits until `m` has had an answer from every node of `want` and never one from `never`. The probe runs in the guest,
 * one command per node: it pings the peers that have not answered yet, six at a time (`-W 3`), round after round
 * until each has answered once or 4 minutes have passed; `never` is pinged on the first round and, if it took more,
 * once more at the end. Six at a time: with many at once the grid of 64 failed (a broadcast ping's 63 answers never
 * brought node7 those of the eight nodes farthest from it in 4 minutes of rounds; 31 unicast pings at once kept a
 * node's probe going past 6 minutes), likely because many answers reach a starved guest together and overflow its
 * NIC's socket on the host (not proved; with six at a time the host's UDP sockets dropped nothing and it passed).
 * A starved guest is asked once, not again and again from the host. Callers ask each pair of nodes once (pairsOnce):
 * an echo's answer crosses the mesh both ways, so a pair that answered reaches each other and one that did not has
 * no way through.
 */
async function reachesExactly(m: Machine, want: Machine[], never: Machine[]): Promise<void> {
  const list = (ms: Machine[]) => ms.map((x) => `${x.name}=${addr(x)}`).join(' ');
  const script = [
    `end=$(($(date +%s) + 240)); left="${list(want)}"; never="${list(never)}"; heard=; across=`,
    // Pings each of $@ (name=address), six at a time; prints the names that answered.
    'probe() { n=0; for p in "$@"; do (ping -c 1 -W 3 "${p#*=}" >/dev/null 2>&1 && echo "${p%%=*}") & n=$((n + 1)); [ $((n % 6)) -ne 0 ] || wait; done; wait; }',
    'across="$(probe $never)"; rounds=0',
    'while [ -n "$left" ] && [ "$(date +%s)" -lt "$end" ]; do',
    '  rounds=$((rounds + 1)); heard=" $heard $(probe $left | tr "\\n" " ") "',
    '  next=; for p in $left; do case "$heard" in *" ${p%%=*} "*) ;; *) next="$next $p" ;; esac; done; left=${next# }',
    'done',
    '[ "$rounds" -le 1 ] || across="$across $(probe $never)"',
    'echo "left: $left"; echo "across:" $across',
  ].join('\n');
  const r = await m.execute(script, { timeout: 6 * 60_000 });
  const across = /^across:(.*)$/m.exec(r.stdout);
  const left = /^left: ?(.*)$/m.exec(r.stdout);
  assert.ok(across && left, `${m.name}'s probe printed no result: ${r.stdout}`);
  assert.deepEqual([...new Set(across[1]!.split(' ').filter(Boolean))], [], `${m.name} must reach no node across the partition`);
  const missing = left[1]!.split(' ').filter(Boolean).map((p) => p.split('=')[0]!);
  if (missing.length > 0) assert.fail(`${m.name} does not reach ${missing.join(', ')} (of the ${want.length} it pinged) in 4 min\n${await meshState(m, want.filter((x) => missing.includes(x.name)))}`);
}

/**
 * Whom each node of `from` pings so that every pair of `from` × `to` is pinged once, by one of its two nodes, and
 * each node pings about as many as the next: in one group (`to` omitted) each pings the next half of the group round
 * the ring (the node half-way round only from the first half); between two groups node i of `from` pings node j of
 * `to` where i + j is even, and node j of `to` pings node i of `from` where it is odd (the returned map holds both).
 */
function pairsOnce(from: Machine[], to?: Machine[]): Map<Machine, Machine[]> {
  const peers = new Map<Machine, Machine[]>();
  if (!to) {
    const k = from.length;
    from.forEach((m, i) => peers.set(m, from.filter((_, j) => {
      const d = (j - i + k) % k;
      return d > 0 && (d < k / 2 || (d === k / 2 && i < k / 2));
    })));
    return peers;
  }
  from.forEach((m, i) => peers.set(m, to.filter((_, j) => (i + j) % 2 === 0)));
  to.forEach((m, j) => peers.set(m, from.filter((_, i) => (i + j) % 2 === 1)));
  return peers;
}

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
      net.partition(west.map((m) => m.name), east.map((m) => m.name));
      // batman-adv reroutes inside each island (routes that went across the cut move), then every node is probed.
      await net.waitConverged({ timeout: 10 * 60_000 });
      const [within, across] = [new Map([...pairsOnce(west), ...pairsOnce(east)]), pairsOnce(west, east)];
      await inSlots(node, 8, (m) => reachesExactly(m, within.get(m)!, across.get(m)!));
      property('fleet.partition.settled.ms', Math.round(performance.now() - t));
    });
    await step('heal: every node reaches every other again', async () => {
      const t = performance.now();
      net.heal();
      await net.waitConverged({ timeout: 10 * 60_000 });
      const pairs = pairsOnce(node);
      await inSlots(node, 8, (m) => reachesExactly(m, pairs.get(m)!, []));
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
