// Topologies: a mesh network's links made from a list of machines instead of written out. `line`, `ring`, `grid` and
// `randomGeometric` take a fleet's role (machines: { node: { profile, count } }: its members in order) or a list of
// machine names; `fromFile` reads a map of a mesh (topology-file.ts: batadv-vis output, Graphviz, JSON, a list of
// links). harness/runner/fleets.ts resolves them to links and places when the scenario is loaded, so everything after
// sees plain links (and, for a radio model, positions).
//   networks: { mesh: { topology: grid('node', 8), batman: { origIntervalMs: 1000 } } }
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTopologyFile } from './topology-file.ts';

/** Which machines a topology joins: a fleet's role (all its members, in order) or machine names. */
export type Members = string | string[];

/** A topology as a scenario declares it; resolveTopology() makes its links. */
export type Topology =
  | { kind: 'line'; members: Members }
  | { kind: 'ring'; members: Members }
  | { kind: 'grid'; members: Members; width: number }
  | { kind: 'randomGeometric'; members: Members; radius: number; seed: number; size?: number }
  | { kind: 'file'; path: string; members?: Members };

/** Each machine linked to the next: a chain whose ends are as far apart as a mesh gets. */
export function line(members: Members): MadeTopology {
  return { kind: 'line', members };
}

/** A line whose last machine links back to the first. */
export function ring(members: Members): MadeTopology {
  return { kind: 'ring', members };
}

/**
 * Machines laid out row by row, `width` to a row (the last row may be short), each linked to its right and lower
 * neighbour: the hop count across grows with the square root of the fleet, not with its size.
 */
export function grid(members: Members, width: number): MadeTopology {
  return { kind: 'grid', members, width };
}

/**
 * Machines scattered at random (from `seed`: the same seed, the same places) over a square `size` wide (default √N,
 * about one machine per unit of area), each linked to every machine within `radius`: a random geometric graph, what
 * radio nodes dropped over a field make. A radius near 1.5 links most of a fleet; check that it converges.
 */
export function randomGeometric(members: Members, opts: { radius: number; seed?: number; size?: number }): MadeTopology {
  return { kind: 'randomGeometric', members, radius: opts.radius, seed: opts.seed ?? 1, ...(opts.size !== undefined ? { size: opts.size } : {}) };
}

/**
 * The links (and places, if it gives them) of a mesh mapped in file `path`: batadv-vis's output (`batadv-vis -f dot`,
 * `-f jsondoc` or `-f json` on a real mesh; a node is its primary interface), a Graphviz graph, JSON (`{ links: [[a,
 * b], ...], positions? }`) or a list of links, one "a b" a line. A relative path is from the scenario file's folder.
 * With `members` (a fleet's role or machine names) the file's nodes, in the order it names them, are those machines
 * (as many as the file has nodes); without, the file names the scenario's machines.
 */
export function fromFile(path: string | URL, opts: { members?: Members } = {}): Topology {
  return { kind: 'file', path: path instanceof URL ? fileURLToPath(path) : path, ...(opts.members !== undefined ? { members: opts.members } : {}) };
}

/** A topology whose links fleetlab makes from its members (fromFile's come from its file: fileTopology()). */
export type MadeTopology = Exclude<Topology, { kind: 'file' }>;

/** Whether `v` is a topology from line(), ring(), grid(), randomGeometric() or fromFile(). */
export function isTopology(v: unknown): v is Topology {
  const k = (v as { kind?: unknown } | null)?.kind;
  if (typeof v !== 'object' || v === null) return false;
  if (k === 'file') return typeof (v as { path?: unknown }).path === 'string';
  return (k === 'line' || k === 'ring' || k === 'grid' || k === 'randomGeometric') && 'members' in v;
}

/**
 * A file topology read and put on `names` (its members; undefined: the file's own names): its nodes, links and places
 * (the file's, else a circle). `path` must be absolute (fleets.ts resolves it from the scenario's folder).
 */
export function fileTopology(t: Extract<Topology, { kind: 'file' }>, names: string[] | undefined): { names: string[]; links: Array<[string, string]>; positions: Record<string, [number, number]> } {
  if (!isAbsolute(t.path)) throw new Error(`fromFile(${t.path}): the path is resolved from the scenario file's folder; none was given`);
  const f = readTopologyFile(t.path);
  const to = names ?? f.nodes;
  if (to.length !== f.nodes.length) throw new Error(`fromFile(${t.path}): the file has ${f.nodes.length} nodes (${f.nodes.slice(0, 3).join(', ')}${f.nodes.length > 3 ? ', …' : ''}) and members has ${to.length} machines: one machine for each node`);
  const as = new Map(f.nodes.map((n, i) => [n, to[i]!]));
  const links = f.links.map(([a, b]) => [as.get(a)!, as.get(b)!] as [string, string]);
  const positions = f.positions ? Object.fromEntries(Object.entries(f.positions).filter(([n]) => as.has(n)).map(([n, p]) => [as.get(n)!, p])) : topologyPositions(ring(''), to);
  if (f.positions) {
    const unplaced = to.filter((n) => !positions[n]);
    if (unplaced.length) throw new Error(`fromFile(${t.path}): positions place some nodes but not ${unplaced.join(', ')}: place every node or none`);
  }
  return { names: to, links, positions };
}

/** A small seeded generator (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Where topology `t` puts each of `names` on a plane (report.html draws it there): a grid's column and row, a line
 * along x, a ring on a circle whose neighbours are one unit apart.
 */
export function topologyPositions(t: MadeTopology, names: string[]): Record<string, [number, number]> {
  const n = names.length;
  const at = (f: (i: number) => [number, number]) => Object.fromEntries(names.map((name, i) => [name, f(i)]));
  if (t.kind === 'grid') return at((i) => [i % t.width, Math.floor(i / t.width)]);
  if (t.kind === 'randomGeometric') {
    const next = seeded(t.seed);
    const side = t.size ?? Math.sqrt(n);
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return at(() => [round(next() * side), round(next() * side)]);
  }
  if (t.kind === 'line' || n < 3) return at((i) => [i, 0]);
  const r = 1 / (2 * Math.sin(Math.PI / n));
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return at((i) => [round(r + r * Math.sin((2 * Math.PI * i) / n)), round(r - r * Math.cos((2 * Math.PI * i) / n))]);
}

/** The links of topology `t` over `names` (its members, resolved); throws an Error saying what is wrong with it. */
export function topologyLinks(t: MadeTopology, names: string[]): Array<[string, string]> {
  const n = names.length;
  if (t.kind === 'randomGeometric') {
    if (n < 2) throw new Error(`randomGeometric() needs at least 2 machines, got ${n}`);
    if (typeof t.radius !== 'number' || !(t.radius > 0)) throw new Error(`randomGeometric(…, { radius: ${JSON.stringify(t.radius)} }): the radius is a distance above 0`);
    if (!Number.isInteger(t.seed)) throw new Error(`randomGeometric(…, { seed: ${JSON.stringify(t.seed)} }): the seed is a whole number`);
    if (t.size !== undefined && !(t.size > 0)) throw new Error(`randomGeometric(…, { size: ${JSON.stringify(t.size)} }): the size is a distance above 0`);
    const at = topologyPositions(t, names);
    const links: Array<[string, string]> = [];
    names.forEach((a, i) => names.slice(i + 1).forEach((b) => Math.hypot(at[a]![0] - at[b]![0], at[a]![1] - at[b]![1]) <= t.radius && links.push([a, b])));
    if (!links.length) throw new Error(`randomGeometric(…, { radius: ${t.radius} }) links no two of the ${n} machines: give a larger radius`);
    return links;
  }
  if (t.kind === 'line' || t.kind === 'ring') {
    if (n < 2) throw new Error(`${t.kind}() needs at least 2 machines, got ${n}`);
    const links = names.slice(1).map((b, i) => [names[i]!, b] as [string, string]);
    // A ring of two is their one link.
    if (t.kind === 'ring' && n > 2) links.push([names[n - 1]!, names[0]!]);
    return links;
  }
  const w = t.width;
  if (!Number.isInteger(w) || w < 1) throw new Error(`grid(…, ${JSON.stringify(w)}): the width is the machines in a row, a whole number of at least 1`);
  if (n < 2) throw new Error(`grid() needs at least 2 machines, got ${n}`);
  const links: Array<[string, string]> = [];
  names.forEach((a, i) => {
    if (i % w < w - 1 && i + 1 < n) links.push([a, names[i + 1]!]);
    if (i + w < n) links.push([a, names[i + w]!]);
  });
  return links;
}
