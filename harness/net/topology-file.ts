// A mesh's links read from a file (fromFile() in topology.ts): a map of a real mesh to rebuild in the lab. Reads
// batadv-vis's three output formats (alfred's vis/vis.c: `dot`, the default; `jsondoc`; `json`, an object a line),
// in which a node is its primary interface's MAC, its secondary interfaces' MACs are mapped to it, and client (TT)
// entries are not links; any Graphviz graph of `a -- b` / `a -> b` edges; fleetlab's own JSON
// (`{ "nodes"?: [...], "links": [["a", "b"], ...], "positions"?: { "a": [x, y] } }`); and a plain list, a link
// ("a b" or "a,b") or a lone node a line, `#` starting a comment. Links are undirected: each pair once, in the order
// first seen; batadv-vis's metrics (255/TQ) are not read.
import { readFileSync } from 'node:fs';

/** What a topology file holds: its nodes in the order first named, its links, and where it places them (if it does). */
export interface TopologyFile {
  nodes: string[];
  links: Array<[string, string]>;
  positions?: Record<string, [number, number]>;
}

/** Reads and parses topology file `path`; throws an Error naming the file (and the line) and what is wrong. */
export function readTopologyFile(path: string): TopologyFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`fromFile(${path}): cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const f = parseTopology(text);
    if (f.links.length === 0) throw new Error('it has no links');
    return f;
  } catch (err) {
    throw new Error(`fromFile(${path}): ${(err as Error).message}`);
  }
}

/** A topology file's text parsed (the format told from its content). */
export function parseTopology(text: string): TopologyFile {
  const g = new Graph();
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch {
      // batadv-vis's json format: one object a line.
      trimmed.split('\n').forEach((line, i) => line.trim() && visJsonLine(g, line, i + 1));
      return g.result();
    }
    if (isObject(doc) && Array.isArray(doc.vis)) visJsondoc(g, doc.vis);
    else if (isObject(doc) && Array.isArray(doc.links)) ownJson(g, doc);
    else throw new Error('a JSON file is batadv-vis --format jsondoc ({ "vis": [...] }) or { "links": [["a", "b"], ...] }');
    return g.result();
  }
  if (/^(strict\s+)?(di)?graph\b/i.test(trimmed)) {
    dot(g, trimmed);
    return g.result();
  }
  trimmed.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const ends = line.split(/[\s,]+/);
    if (ends.length > 2) throw new Error(`line ${i + 1}: "${line}": a line is a link ("a b") or one node`);
    if (ends.length === 1) g.node(ends[0]!);
    else g.link(ends[0]!, ends[1]!, `line ${i + 1}`);
  });
  return g.result();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Nodes in order, secondary interfaces mapped to their node, undirected links once each. */
class Graph {
  private readonly nodes: string[] = [];
  private readonly primaryOf = new Map<string, string>();
  private readonly links: Array<[string, string]> = [];
  private readonly seen = new Set<string>();
  private readonly pending: Array<[string, string]> = [];
  positions: Record<string, [number, number]> | undefined;

  node(name: string): void {
    if (!this.primaryOf.has(name)) {
      this.primaryOf.set(name, name);
      this.nodes.push(name);
    }
  }

  /** `secondary` is another interface of node `primary`. */
  alias(secondary: string, primary: string): void {
    this.node(primary);
    if (this.primaryOf.get(secondary) === secondary) throw new Error(`${secondary} is a node and an interface of ${primary}`);
    this.primaryOf.set(secondary, primary);
  }

  /**
   * A link, resolved once every interface is known; its ends are nodes from here on unless `interfaces` (batadv-vis:
   * an interface may be named before the node it belongs to says it is its secondary).
   */
  link(a: string, b: string, where?: string, interfaces = false): void {
    if (a === b) throw new Error(`${where ? `${where}: ` : ''}links ${a} to itself`);
    if (!interfaces) for (const x of [a, b]) if (!this.primaryOf.has(x)) this.node(x);
    this.pending.push([a, b]);
  }

  result(): TopologyFile {
    for (const [a, b] of this.pending) {
      for (const x of [a, b]) if (!this.primaryOf.has(x)) this.node(x);
      const [p, q] = [this.primaryOf.get(a)!, this.primaryOf.get(b)!];
      const key = [p, q].sort().join('\0');
      if (p === q || this.seen.has(key)) continue;
      this.seen.add(key);
      this.links.push([p, q]);
    }
    return { nodes: this.nodes, links: this.links, ...(this.positions ? { positions: this.positions } : {}) };
  }
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || !v) throw new Error(`${what}: expected a name, got ${JSON.stringify(v)}`);
  return v;
};

/** batadv-vis --format jsondoc: { vis: [{ primary, secondary?: [...], neighbors: [{ router, neighbor, metric }], clients }] }. */
function visJsondoc(g: Graph, vis: unknown[]): void {
  vis.forEach((e, i) => {
    if (!isObject(e)) throw new Error(`vis[${i}]: expected an object`);
    const primary = str(e.primary, `vis[${i}].primary`);
    g.node(primary);
    for (const s of (e.secondary as unknown[] | undefined) ?? []) g.alias(str(s, `vis[${i}].secondary`), primary);
  });
  vis.forEach((e, i) => {
    const neighbours = (e as { neighbors?: unknown }).neighbors ?? [];
    if (!Array.isArray(neighbours)) throw new Error(`vis[${i}].neighbors: expected a list`);
    neighbours.forEach((n, k) => {
      const w = `vis[${i}].neighbors[${k}]`;
      if (!isObject(n)) throw new Error(`${w}: expected { router, neighbor, metric }`);
      g.link(str(n.router, `${w}.router`), str(n.neighbor, `${w}.neighbor`), w, true);
    });
  });
}

/** One line of batadv-vis --format json: { primary } | { secondary, of } | { router, neighbor, label } | { router, gateway, label: "TT" }. */
function visJsonLine(g: Graph, line: string, n: number): void {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new Error(`line ${n}: not JSON (batadv-vis --format json writes an object a line)`);
  }
  if (!isObject(o)) throw new Error(`line ${n}: expected an object`);
  if (o.primary !== undefined) g.node(str(o.primary, `line ${n}: primary`));
  else if (o.secondary !== undefined) g.alias(str(o.secondary, `line ${n}: secondary`), str(o.of, `line ${n}: of`));
  else if (o.neighbor !== undefined) g.link(str(o.router, `line ${n}: router`), str(o.neighbor, `line ${n}: neighbor`), `line ${n}`, true);
  else if (o.gateway === undefined) throw new Error(`line ${n}: not a batadv-vis entry (primary, secondary, router)`);
}

/** fleetlab's own: { nodes?, links, positions? }. */
function ownJson(g: Graph, doc: Record<string, unknown>): void {
  for (const [i, n] of ((doc.nodes as unknown[] | undefined) ?? []).entries()) g.node(str(n, `nodes[${i}]`));
  (doc.links as unknown[]).forEach((l, i) => {
    if (!Array.isArray(l) || l.length !== 2) throw new Error(`links[${i}]: expected ["a", "b"], got ${JSON.stringify(l)}`);
    g.link(str(l[0], `links[${i}][0]`), str(l[1], `links[${i}][1]`), `links[${i}]`);
  });
  if (doc.positions === undefined) return;
  if (!isObject(doc.positions)) throw new Error('positions: expected { "a": [x, y], ... }');
  for (const [name, p] of Object.entries(doc.positions)) {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error(`positions.${name}: expected [x, y], got ${JSON.stringify(p)}`);
  }
  g.positions = doc.positions as Record<string, [number, number]>;
}

/**
 * A Graphviz graph: edge statements `a -- b`, `"a" -> "b" -> "c"` (quoted or bare names; batadv-vis's `[label="TT"]`
 * edges to clients skipped) and batadv-vis's `subgraph "cluster_…"` of one node's interfaces (the first is the node).
 */
function dot(g: Graph, text: string): void {
  const ID = /^(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_.:-]+))$/;
  const id = (s: string, where: string) => {
    const m = ID.exec(s.trim());
    if (!m) throw new Error(`${where}: "${s.trim()}" is no node name`);
    return m[1] ?? m[2]!;
  };
  /** A statement without its [attributes], and them. */
  const split = (st: string) => {
    const m = /^(.*?)\s*(\[[^\]]*\])?\s*$/.exec(st)!;
    return { body: m[1]!, attrs: m[2] ?? '' };
  };
  for (const c of text.matchAll(/subgraph\s+"?cluster_[^{]*\{([^}]*)\}/g)) {
    const members = c[1]!.split(/[;\n]/).map((st) => split(st.trim()).body).filter((b) => b && !b.includes('=')).map((b) => id(b, 'a cluster'));
    if (members[0]) g.node(members[0]);
    for (const x of members.slice(1)) g.alias(x, members[0]!);
  }
  const body = text.replace(/subgraph\s+"?cluster_[^{]*\{[^}]*\}/g, '').replace(/^[^{]*\{/, '').replace(/\}\s*$/, '');
  body.split(/[;\n]/).forEach((raw, i) => {
    const { body: st, attrs } = split(raw.trim());
    if (!/--|->/.test(st) || /label\s*=\s*"?TT"?/.test(attrs)) return;
    const ends = st.split(/\s*(?:--|->)\s*/).map((x) => id(x, `statement ${i + 1}`));
    for (let k = 1; k < ends.length; k++) g.link(ends[k - 1]!, ends[k]!);
  });
}
