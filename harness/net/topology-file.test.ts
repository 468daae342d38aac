// fromFile()'s formats, each holding one mesh: four nodes in a ring, the second with a secondary interface through
// which it links to the third, and a client (TT) entry that is no link. batadv-vis's three formats are written as
// alfred's vis/vis.c prints them (dot: the default; jsondoc; json, an object a line); then a Graphviz graph, fleetlab's
// JSON and a plain list. Then the loader: a relative path from the scenario's folder, the file's nodes put on a
// fleet's machines in order, and the errors a user meets.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandFleets } from '../runner/fleets.ts';
import { scenario } from '../runner/scenario.ts';
import { parseTopology, readTopologyFile } from './topology-file.ts';
import { fromFile } from './topology.ts';

const mac = (n: number, i = 1) => `fe:f0:00:00:0${n}:0${i}`;
const RING = { nodes: [mac(1), mac(2), mac(3), mac(4)], links: [[mac(1), mac(2)], [mac(2), mac(3)], [mac(3), mac(4)], [mac(4), mac(1)]] };
const FIELD_DOT = join(import.meta.dirname, 'fixtures/topologies/field.dot');

const JSONDOC = `{
  "source_version" : "2024.0",
  "algorithm" : 4,
  "vis" : [
    { "primary" : "${mac(1)}",
      "neighbors" : [
         { "router" : "${mac(1)}",
           "neighbor" : "${mac(2)}",
           "metric" : "1.000" }
      ],
      "clients" : [
        "00:00:43:05:00:04"
      ]
    },
    { "primary" : "${mac(2)}",
      "secondary" : [ "${mac(2, 2)}"
       ],
      "neighbors" : [
         { "router" : "${mac(2)}",
           "neighbor" : "${mac(1)}",
           "metric" : "1.004" },
         { "router" : "${mac(2, 2)}",
           "neighbor" : "${mac(3)}",
           "metric" : "1.518" }
      ],
      "clients" : [

      ]
    },
    { "primary" : "${mac(3)}",
      "neighbors" : [
         { "router" : "${mac(3)}",
           "neighbor" : "${mac(2, 2)}",
           "metric" : "1.000" },
         { "router" : "${mac(3)}",
           "neighbor" : "${mac(4)}",
           "metric" : "2.130" }
      ],
      "clients" : [

      ]
    },
    { "primary" : "${mac(4)}",
      "neighbors" : [
         { "router" : "${mac(4)}",
           "neighbor" : "${mac(1)}",
           "metric" : "3.000" }
      ],
      "clients" : [

      ]
    }
  ]
}
`;

const JSON_LINES = [
  `{ "primary" : "${mac(1)}" }`,
  `{ "router" : "${mac(1)}", "neighbor" : "${mac(2)}", "label" : "1.000" }`,
  `{ "router" : "${mac(1)}", "gateway" : "00:00:43:05:00:04", "label" : "TT" }`,
  `{ "primary" : "${mac(2)}" }`,
  `{ "secondary" : "${mac(2, 2)}", "of" : "${mac(2)}" }`,
  `{ "router" : "${mac(2, 2)}", "neighbor" : "${mac(3)}", "label" : "1.518" }`,
  `{ "primary" : "${mac(3)}" }`,
  `{ "router" : "${mac(3)}", "neighbor" : "${mac(4)}", "label" : "2.130" }`,
  `{ "primary" : "${mac(4)}" }`,
  `{ "router" : "${mac(4)}", "neighbor" : "${mac(1)}", "label" : "3.000" }`,
].join('\n');

describe('topology files', () => {
  it("batadv-vis's dot, jsondoc and json: a node per primary interface, secondaries mapped to it, clients no links", () => {
    expect(readTopologyFile(FIELD_DOT)).toEqual(RING);
    expect(parseTopology(JSONDOC)).toEqual(RING);
    expect(parseTopology(JSON_LINES)).toEqual(RING);
  });

  it("a Graphviz graph (chains, bare names), fleetlab's JSON with places, a list of links", () => {
    expect(parseTopology('graph field {\n  a -- b -- c;\n  c -- d [weight=2]; d -- a\n}\n')).toEqual({ nodes: ['a', 'b', 'c', 'd'], links: [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'a']] });
    const own = parseTopology(JSON.stringify({ nodes: ['gw', 'a', 'b'], links: [['a', 'b'], ['b', 'a'], ['gw', 'a']], positions: { gw: [0, 0], a: [1, 0], b: [2, 0.5] } }));
    expect(own).toEqual({ nodes: ['gw', 'a', 'b'], links: [['a', 'b'], ['gw', 'a']], positions: { gw: [0, 0], a: [1, 0], b: [2, 0.5] } });
    expect(parseTopology('# the yard\na b\nb,c\n\nc d  # the fence\nd a\nlonely\n')).toEqual({ nodes: ['a', 'b', 'c', 'd', 'lonely'], links: [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'a']] });
  });

  it('says what is wrong, and where', () => {
    expect(() => parseTopology('a b c\n')).toThrow('line 1: "a b c": a line is a link ("a b") or one node');
    expect(() => parseTopology('a a\n')).toThrow('line 1: links a to itself');
    expect(() => parseTopology('{ "nodes": [] }')).toThrow(/a JSON file is batadv-vis --format jsondoc/);
    expect(() => parseTopology('{ "links": [["a"]] }')).toThrow('links[0]: expected ["a", "b"], got ["a"]');
    expect(() => parseTopology(`{ "primary" : "x" }\nnot json`)).toThrow('line 2: not JSON (batadv-vis --format json writes an object a line)');
    expect(() => readTopologyFile('/nonexistent/field.dot')).toThrow('fromFile(/nonexistent/field.dot): cannot read it (ENOENT)');
  });
});

describe('fromFile() in a scenario', () => {
  const run = async () => undefined;
  it("the file's nodes on a fleet's machines in order, from a path relative to the scenario's folder; its places or a circle", async () => {
    const s = expandFleets(scenario({ name: 's', machines: { node: { profile: 'x86_64-direct', count: 4 } }, networks: { mesh: { topology: fromFile('fixtures/topologies/field.dot', { members: 'node' }), batman: true } }, run }), 'f.ts', import.meta.dirname);
    const mesh = s.networks!.mesh as { links: Array<[string, string]>; positions: Record<string, [number, number]> };
    expect(mesh.links).toEqual([['node0', 'node1'], ['node1', 'node2'], ['node2', 'node3'], ['node3', 'node0']]);
    expect(Object.keys(mesh.positions)).toEqual(['node0', 'node1', 'node2', 'node3']);
    // A file naming the scenario's machines needs no members; its places are kept.
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-topology-'));
    await writeFile(join(dir, 'yard.json'), JSON.stringify({ links: [['a', 'b'], ['b', 'c']], positions: { a: [0, 0], b: [3, 0], c: [3, 4] } }));
    const named = expandFleets(scenario({ name: 's', machines: { a: 'x86_64-direct', b: 'x86_64-direct', c: 'x86_64-direct' }, networks: { mesh: { topology: fromFile(new URL(`file://${dir}/yard.json`)) } }, run }), 'f.ts', '/elsewhere');
    expect(named.networks!.mesh).toEqual({ links: [['a', 'b'], ['b', 'c']], positions: { a: [0, 0], b: [3, 0], c: [3, 4] } });
  });

  it('refuses a file whose nodes are no machines, or more nodes than machines, naming the network and file', () => {
    const load = (topology: unknown, machines: Record<string, unknown>) => () => expandFleets(scenario({ name: 's', machines: machines as never, networks: { mesh: { topology } as never }, run }), 'f.ts: scenario "s"', import.meta.dirname);
    expect(load(fromFile('fixtures/topologies/field.dot'), { a: 'x86_64-direct' })).toThrow(/f\.ts: scenario "s", networks\.mesh: fromFile\(.*field\.dot\) names fe:f0:00:00:01:01, fe:f0:00:00:02:01, fe:f0:00:00:03:01 and 1 more, which are no machines of this scenario: give fromFile\(path, \{ members: 'node' \}\)/);
    expect(load(fromFile('fixtures/topologies/field.dot', { members: 'node' }), { node: { profile: 'x86_64-direct', count: 3 } })).toThrow(/field\.dot\): the file has 4 nodes \(fe:f0:00:00:01:01, fe:f0:00:00:02:01, fe:f0:00:00:03:01, …\) and members has 3 machines: one machine for each node/);
    expect(load(fromFile('fixtures/topologies/missing.dot', { members: 'node' }), { node: { profile: 'x86_64-direct', count: 3 } })).toThrow(/missing\.dot\): cannot read it \(ENOENT\)/);
  });
});
