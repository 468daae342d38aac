// A case's mesh networks as report.html draws them: members and where they lie, links (and which are down at the
// end), each partition's islands, and on a batman-adv mesh the routes every member uses at the case's end (read from
// its originator table: for each other member, the neighbour it goes through).
import type { Machine } from '../protocols/machine.ts';
import type { Fabric } from './fabric.ts';
import { membersByMac } from './converge.ts';
import { distance } from './radio.ts';
import { inSlots } from '../time/in-slots.ts';

/** One mesh network of a case, for report.html (report.json's attempts[].topology). */
export interface NetworkPicture {
  name: string;
  members: string[];
  links: Array<{ a: string; b: string; up: boolean }>;
  /** Members' places on a plane (a topology's layout); none: report.html lays them on a circle. */
  positions?: Record<string, [number, number]>;
  /** Each partition made during the case: when (epoch ms) and its islands. */
  partitions: Array<{ t: number; groups: string[][] }>;
  batman?: { origIntervalMs: number };
  /** Per member, its routes in use at the end: [destination member, next-hop member]. */
  routes?: Record<string, Array<[string, string]>>;
  /** Members whose routes could not be read, and why. */
  routesMissing?: Record<string, string>;
}

/** The pictures of `fabric`'s mesh networks; with `routes`, each batman-adv member's routes in use, 8 machines at a time. */
export async function networkPictures(fabric: Fabric, machines: Record<string, Machine>, opts: { routes: boolean; signal?: AbortSignal }): Promise<NetworkPicture[]> {
  const out: NetworkPicture[] = [];
  for (const n of fabric.networks.values()) {
    if (!n.mesh) continue;
    // A radio network's pairs out of range are no links (every pair may become one when a member moves).
    const inRange = (l: { a: string; b: string }) => !n.radio || distance(n.positions![l.a]!, n.positions![l.b]!) <= n.radio.range;
    const p: NetworkPicture = { name: n.name, members: [...n.members], links: n.linkPairs().filter(inRange), partitions: n.partitions, ...(n.positions ? { positions: n.positions } : {}), ...(n.batman ? { batman: n.batman } : {}) };
    if (n.batman && opts.routes) await readRoutes(p, machines, opts.signal);
    out.push(p);
  }
  return out;
}

async function readRoutes(p: NetworkPicture, machines: Record<string, Machine>, signal: AbortSignal | undefined): Promise<void> {
  const byMac = membersByMac({ name: p.name, members: p.members }, machines);
  const routes: Record<string, Array<[string, string]>> = {};
  const missing: Record<string, string> = {};
  await inSlots(p.members, 8, async (name) => {
    const m = machines[name];
    if (!m?.net || m.state !== 'running') {
      missing[name] = m?.net ? `it was ${m.state} at the end` : 'it has no mesh helpers';
      return;
    }
    try {
      const table = await m.net.mesh.originators({ timeout: 10_000, signal });
      routes[name] = table.filter((o) => o.best && byMac.has(o.originator) && byMac.has(o.nextHop)).map((o) => [byMac.get(o.originator)!, byMac.get(o.nextHop)!]);
    } catch (err) {
      missing[name] = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    }
  });
  p.routes = Object.fromEntries(p.members.filter((m) => routes[m]).map((m) => [m, routes[m]!]));
  if (Object.keys(missing).length) p.routesMissing = missing;
}
