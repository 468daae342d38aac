// ctx.net.waitConverged(): a whole batman-adv mesh converged. Each round reads every member's originator and global
// translation tables (a few machines at a time) and checks that each has a route in use to every member it can reach
// over the links that are up (its island, while the network is partitioned), and that its translation table puts
// that member's mesh interface (bat0's MAC, which carries its address) behind it: without the entry batman-adv drops
// unicast to the member's address. With `exact`, also no route to a member it cannot reach (batman-adv forgets an
// originator it no longer hears after 200 s). A member's death ends the wait (its shell's life does).
import { CommandError, ConfigurationError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { Machine } from '../protocols/machine.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom, pollUntil } from '../time/deadline.ts';
import { inSlots } from '../time/in-slots.ts';
import type { MeshTables } from './batman-mesh.ts';
import type { Fabric, Network } from './fabric.ts';

export interface ConvergeOptions extends WaitOptions {
  /** The batman-adv network to wait for; default every one of the scenario. */
  network?: string;
  /** Also wait until no member has a route to one it cannot reach (after a partition: up to batman-adv's 200 s purge). */
  exact?: boolean;
  /** How often the tables are read. Default 1000 ms. */
  intervalMs?: number;
}

/** What waitConverged() saw: how long it waited, and how many rounds of tables it read. */
export interface Converged {
  ms: number;
  rounds: number;
  networks: string[];
}

/** The members of network `n` by their MAC there (lower case): batman-adv names originators and next hops so. */
export function membersByMac(n: { name: string; members: string[] }, machines: Record<string, Machine>): Map<string, string> {
  const byMac = new Map<string, string>();
  for (const m of n.members) {
    const mac = machines[m]?.net?.mac(n.name);
    if (mac) byMac.set(mac.toLowerCase(), m);
  }
  return byMac;
}

/** Members of `n` each member reaches over links up both ways (itself left out). */
function islands(n: Network): Map<string, Set<string>> {
  const up = new Map(n.members.map((m) => [m, [] as string[]]));
  for (const l of n.linkPairs()) {
    if (!l.up) continue;
    up.get(l.a)!.push(l.b);
    up.get(l.b)!.push(l.a);
  }
  const reach = new Map<string, Set<string>>();
  for (const start of n.members) {
    if (reach.has(start)) continue;
    const seen = new Set([start]);
    for (const queue = [start]; queue.length; ) for (const x of up.get(queue.shift()!)!) if (!seen.has(x)) (seen.add(x), queue.push(x));
    for (const m of seen) reach.set(m, new Set([...seen].filter((x) => x !== m)));
  }
  return reach;
}

/** Waits until the scenario's batman-adv networks (or `opts.network`) converged; see the file's comment. */
export async function waitConverged(fabric: Fabric | undefined, machines: Record<string, Machine>, opts: ConvergeOptions = {}): Promise<Converged> {
  const all = fabric ? [...fabric.networks.values()].filter((n) => n.batman) : [];
  const nets = opts.network === undefined ? all : all.filter((n) => n.name === opts.network);
  if (!nets.length) {
    throw new ConfigurationError(opts.network === undefined ? 'net.waitConverged(): this scenario has no batman-adv network (networks: { mesh: { links | topology, batman: true } })' : `net.waitConverged({ network: '${opts.network}' }): no batman-adv network of this scenario is called so (batman-adv networks: ${all.map((n) => n.name).join(', ') || 'none'})`);
  }
  const awaited = `batman-adv network${nets.length > 1 ? 's' : ''} ${nets.map((n) => n.name).join(', ')} to converge`;
  const deadline = deadlineFrom(opts, 300_000, awaited, 'pass { timeout } to net.waitConverged()');
  const t0 = performance.now();
  let rounds = 0;
  let lacking: string[] = [];
  // Each member's tables as last read; a round reads again only the members that lacked something in the one before
  // (fewer commands for starved guests while a big mesh converges), and a round that found nothing lacking is
  // confirmed by one that reads every member: convergence is only ever declared on tables read in one round.
  const known = new Map(nets.map((n) => [n.name, new Map<string, MeshTables>()]));
  const pending = new Map<string, Set<string> | undefined>();
  const round = async (): Promise<true | undefined> => {
    rounds++;
    lacking = [];
    let everyone = true;
    for (const n of nets) {
      const reach = islands(n);
      const byMac = membersByMac(n, machines);
      const tables = known.get(n.name)!;
      const ask = pending.get(n.name) ?? new Set(n.members);
      if (ask.size < n.members.length) everyone = false;
      await inSlots([...ask], 8, async (m) => {
        const t = await machines[m]!.net!.mesh.tables({ deadline, signal: opts.signal }).catch((err: unknown) => {
          // Before its first hard interface is active batctl fails ("mesh disabled"): no routes yet, not an error.
          if (err instanceof CommandError) return undefined;
          throw err;
        });
        if (t) tables.set(m, t);
        else tables.delete(m);
      });
      const short = new Set<string>();
      for (const m of n.members) {
        const t = tables.get(m);
        const routed = new Set((t?.originators ?? []).filter((o) => o.best).map((o) => byMac.get(o.originator)).filter((x) => x !== undefined));
        const missing = [...reach.get(m)!].filter((x) => !routed.has(x));
        const stale = opts.exact ? [...routed].filter((x) => !reach.get(m)!.has(x)) : [];
        // Unicast to a member's address goes to the originator its translation table puts that member's bat0 MAC behind.
        const behind = new Map((t?.translations ?? []).filter((x) => x.best).map((x) => [x.client, byMac.get(x.originator)]));
        const untranslated = [...reach.get(m)!].filter((x) => routed.has(x) && tables.has(x) && behind.get(tables.get(x)!.address) !== x);
        if (missing.length) lacking.push(`${m} has no route to ${list(missing)}`);
        if (untranslated.length) lacking.push(`${m}'s translation table does not put the mesh address of ${list(untranslated)} behind it`);
        if (stale.length) lacking.push(`${m} still routes to ${list(stale)}, which it cannot reach`);
        if (missing.length || untranslated.length || stale.length) short.add(m);
      }
      pending.set(n.name, short.size ? short : undefined);
    }
    return lacking.length || !everyone ? undefined : true;
  };
  const r = await pollUntil(round, { deadline, intervalMs: opts.intervalMs ?? 1000, signal: opts.signal, awaited });
  if (r.timedOut) throw new TimeoutError('test-failure', { awaited: `${awaited} (after ${rounds} rounds: ${lacking.slice(0, 8).join('; ')}${lacking.length > 8 ? `; and ${lacking.length - 8} more` : ''})`, deadline });
  return { ms: Math.round(performance.now() - t0), rounds, networks: nets.map((n) => n.name) };
}

const list = (xs: string[]) => (xs.length <= 6 ? xs.join(', ') : `${xs.slice(0, 6).join(', ')} and ${xs.length - 6} more`);
