// Fleets and topologies as the loader resolves them: a counted role becomes its machines (in order, named role0 …),
// a fleet's role in a LAN stands for all of them, line/ring/grid make exact links, the body gets the fleet as an array;
// bad declarations are configuration errors naming the field.
import { describe, expect, it } from 'vitest';
import { grid, line, randomGeometric, ring, topologyLinks, topologyPositions } from '../net/topology.ts';
import type { Machine } from '../protocols/machine.ts';
import { bodyMachines, expandFleets, machineNames } from './fleets.ts';
import { scenario } from './scenario.ts';

const W = 'f.ts: scenario "s"';
const run = async () => undefined;

describe('topologies', () => {
  const n = (k: number) => Array.from({ length: k }, (_, i) => `n${i}`);
  it('line and ring: each to the next, the ring closed (a ring of two is one link)', () => {
    expect(topologyLinks(line(''), n(3))).toEqual([['n0', 'n1'], ['n1', 'n2']]);
    expect(topologyLinks(ring(''), n(4))).toEqual([['n0', 'n1'], ['n1', 'n2'], ['n2', 'n3'], ['n3', 'n0']]);
    expect(topologyLinks(ring(''), n(2))).toEqual([['n0', 'n1']]);
  });
  it('grid: row by row, right and down neighbours, a short last row', () => {
    // n0 n1 n2
    // n3 n4 n5
    // n6
    expect(topologyLinks(grid('', 3), n(7))).toEqual([['n0', 'n1'], ['n0', 'n3'], ['n1', 'n2'], ['n1', 'n4'], ['n2', 'n5'], ['n3', 'n4'], ['n3', 'n6'], ['n4', 'n5']]);
    expect(topologyLinks(grid('', 4), n(16))).toHaveLength(2 * 4 * 3);
  });
  it('places members for report.html: a grid by column and row, a line along x, a ring with neighbours one unit apart', () => {
    expect(topologyPositions(grid('', 3), n(5))).toEqual({ n0: [0, 0], n1: [1, 0], n2: [2, 0], n3: [0, 1], n4: [1, 1] });
    expect(topologyPositions(line(''), n(3))).toEqual({ n0: [0, 0], n1: [1, 0], n2: [2, 0] });
    const p = topologyPositions(ring(''), n(16));
    for (let i = 0; i < 16; i++) {
      const [a, b] = [p[`n${i}`]!, p[`n${(i + 1) % 16}`]!];
      expect(Math.hypot(a[0] - b[0], a[1] - b[1])).toBeCloseTo(1, 2);
    }
  });
  it('randomGeometric: the same seed the same places, links exactly between machines within the radius', () => {
    const t = randomGeometric('', { radius: 1.2, seed: 7 });
    const at = topologyPositions(t, n(16));
    expect(topologyPositions(t, n(16))).toEqual(at);
    expect(topologyPositions(randomGeometric('', { radius: 1.2, seed: 8 }), n(16))).not.toEqual(at);
    // Scattered over a square √16 = 4 wide.
    for (const [x, y] of Object.values(at)) expect(x >= 0 && x < 4 && y >= 0 && y < 4).toBe(true);
    const links = topologyLinks(t, n(16));
    const within = n(16).flatMap((a, i) => n(16).slice(i + 1).filter((b) => Math.hypot(at[a]![0] - at[b]![0], at[a]![1] - at[b]![1]) <= 1.2).map((b) => [a, b]));
    expect(links).toEqual(within);
    expect(links.length).toBeGreaterThan(0);
    expect(() => topologyLinks(randomGeometric('', { radius: 0.001, seed: 1 }), n(4))).toThrow(/links no two of the 4 machines: give a larger radius/);
    expect(() => topologyLinks(randomGeometric('', { radius: -1 }), n(4))).toThrow(/the radius is a distance above 0/);
  });
  it('refuses too few machines and a width that is no count', () => {
    expect(() => topologyLinks(line(''), n(1))).toThrow('line() needs at least 2 machines, got 1');
    expect(() => topologyLinks(grid('', 0), n(4))).toThrow('grid(…, 0): the width is the machines in a row');
  });
});

describe('fleets', () => {
  it('a counted role becomes its machines; a LAN naming it has them all; a topology over it has exact links', () => {
    const s = expandFleets(scenario({ name: 's', machines: { gw: 'x86_64-direct', node: { profile: 'x86_64-direct', count: 4 }, big: { profile: 'x86_64-direct', memoryMiB: 512, count: 2 } }, networks: { lan: ['gw', 'node'], mesh: { topology: ring('node'), batman: { origIntervalMs: 1000 } } }, run }), W);
    expect(s.machines).toEqual({ gw: 'x86_64-direct', node0: 'x86_64-direct', node1: 'x86_64-direct', node2: 'x86_64-direct', node3: 'x86_64-direct', big0: { profile: 'x86_64-direct', memoryMiB: 512 }, big1: { profile: 'x86_64-direct', memoryMiB: 512 } });
    expect(s.fleets).toEqual({ node: ['node0', 'node1', 'node2', 'node3'], big: ['big0', 'big1'] });
    expect(s.networks).toEqual({ lan: ['gw', 'node0', 'node1', 'node2', 'node3'], mesh: { links: [['node0', 'node1'], ['node1', 'node2'], ['node2', 'node3'], ['node3', 'node0']], batman: { origIntervalMs: 1000 }, positions: { node0: [0.707, 0], node1: [1.414, 0.707], node2: [0.707, 1.414], node3: [0, 0.707] } } });
  });
  it('a topology over named roles, and a scenario without fleets is left as it is', () => {
    const plain = scenario({ name: 's', machines: { a: 'x86_64-direct', b: 'x86_64-direct' }, networks: { m: { links: [['a', 'b']] } }, run });
    expect(expandFleets(plain, W)).toBe(plain);
    expect(expandFleets(scenario({ name: 's', machines: { a: 'x86_64-direct', b: 'x86_64-direct', c: 'x86_64-direct' }, networks: { m: { topology: line(['c', 'a', 'b']) } }, run }), W).networks).toEqual({ m: { links: [['c', 'a'], ['a', 'b']], positions: { c: [0, 0], a: [1, 0], b: [2, 0] } } });
  });
  it('names a whole fleet in a step as its first and last machine, the rest by name', () => {
    const fleets = { node: ['node0', 'node1', 'node2', 'node3'], pair: ['pair0', 'pair1'] };
    expect(machineNames(['gw', 'node0', 'node1', 'node2', 'node3', 'pair0', 'pair1'], fleets)).toBe('gw, node0 … node3, pair0, pair1');
    expect(machineNames(['node1', 'node2', 'gw'], fleets)).toBe('node1, node2, gw');
    expect(machineNames(['a', 'b'], undefined)).toBe('a, b');
  });
  it('the body gets a fleet as the array of its machines, in order, beside the named roles', () => {
    const m = (name: string) => ({ name }) as Machine;
    const body = bodyMachines({ gw: m('gw'), node0: m('node0'), node1: m('node1') }, { node: ['node0', 'node1'] });
    expect(Object.keys(body)).toEqual(['gw', 'node']);
    expect((body.node as Machine[]).map((x) => x.name)).toEqual(['node0', 'node1']);
  });
  it('bad fleets and topologies are configuration errors naming the field', () => {
    const bad = (machines: Record<string, unknown>, networks?: Record<string, unknown>) => () => expandFleets(scenario({ name: 's', machines: machines as never, networks: networks as never, run }), W);
    expect(bad({ node: { profile: 'x86_64-direct', count: 0 } })).toThrow(`${W}, machines.node.count: 0 is not a number of machines from 1 to 1024`);
    expect(bad({ node: { profile: 'x86_64-direct', count: 2.5 } })).toThrow('machines.node.count: 2.5 is not a number');
    expect(bad({ pi: { board: 'tag:rpi4', count: 2 } })).toThrow('machines.pi.count: count makes VMs of one profile');
    expect(bad({ node1: 'x86_64-direct', node: { profile: 'x86_64-direct', count: 2 } })).toThrow("the fleet's machine node1 has the name of another role");
    const fleet = { node: { profile: 'x86_64-direct', count: 3 } };
    expect(bad(fleet, { m: { links: [['node', 'node0']] } })).toThrow(`${W}, networks.m: link ["node","node0"] names the fleet node (3 machines): name its members (node0 …) or give the network a topology`);
    expect(bad(fleet, { m: { links: [['node0', 'node1']], topology: ring('node') } })).toThrow('networks.m: has both links and a topology; give one');
    expect(bad(fleet, { m: { topology: { kind: 'star', members: 'node' } } })).toThrow('networks.m: topology is not one fleetlab makes');
    expect(bad(fleet, { m: { topology: grid('node', -1) } })).toThrow('networks.m: grid(…, -1): the width');
  });
});
