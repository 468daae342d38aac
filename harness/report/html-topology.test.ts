// report.html's pictures of a fleet, in Chromium: a mesh network drawn where its topology put its members, with the
// links down at the end dashed, the links batman-adv's routes used drawn thicker, each member coloured by its routes;
// a partition's islands; a fleet's machines as a grid of cells. The page is written from a try made up here (the real
// one comes from harness/net/fleet.test.ts's run: report.json's topology).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { grid, topologyLinks, topologyPositions } from '../net/topology.ts';
import type { AttemptResult, MachineResult } from '../runner/results.ts';
import { openCaseReport } from '../testing/report-page.ts';

describe("report.html's network pictures and fleet grid", () => {
  it('draws the mesh at the end and its partition, and the fleet as cells', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-html-topo-'));
    const t0 = Date.parse('2026-12-07T10:00:00Z');
    const names = Array.from({ length: 9 }, (_, i) => `node${i}`);
    const links = topologyLinks(grid('node', 3), names);
    // Routes at the end: node i reaches every other through its first neighbour; node8 only three; node4's not read.
    const firstNeighbour = (m: string) => links.find(([a, b]) => a === m || b === m)!.find((x) => x !== m)!;
    const routes = Object.fromEntries(names.filter((m) => m !== 'node4').map((m) => [m, names.filter((d) => d !== m).slice(0, m === 'node8' ? 3 : 8).map((d) => [d, firstNeighbour(m)] as [string, string])]));
    const west = names.slice(0, 4);
    const east = names.slice(4);
    const attempt: AttemptResult = {
      attempt: 1, status: 'passed', startedAt: new Date(t0).toISOString(), durationMs: 60_000, steps: [], artifacts: [], output: [],
      machines: names.map((name, i): MachineResult => ({
        role: name, name, profile: 'x86_64-bios', logPath: join(out, `${name}.log`), fleet: 'node',
        facts: { kind: 'vm', profile: 'x86_64-bios', arch: 'x86_64', firmware: 'bios', accel: 'tcg', accelReason: 'test', qemuVersion: '7.2.0', start: i === 0 ? { mode: 'cold', ms: 13_000 } : { mode: 'warm', ms: 9_500 } },
        events: name === 'node5' ? [{ t: t0 + 5000, kind: 'console-check', detail: 'kernel-oops' }] : [],
      })),
      topology: [{
        name: 'mesh', members: names, positions: topologyPositions(grid('node', 3), names), batman: { origIntervalMs: 1000 },
        links: links.map(([a, b]) => ({ a, b, up: !(a === 'node0' && b === 'node1') })),
        partitions: [{ t: t0 + 20_000, groups: [west, east] }],
        routes, routesMissing: { node4: 'it was stopped at the end' },
      }],
    };
    const { page, errors, close } = await openCaseReport(out, 'f.ts::fleet[x86_64-bios]', attempt);
    try {
      expect(errors).toEqual([]);
      const end = page.locator('svg.topology[data-network="mesh"][data-view="end"]');
      await expect(end.locator('circle.node').count()).resolves.toBe(9);
      await expect(end.locator('line.link').count()).resolves.toBe(12);
      // Members where the grid put them: node1 right of node0, node3 below it.
      const at = async (m: string) => end.locator(`circle[data-machine="${m}"]`).evaluate((c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))] as [number, number]);
      const [p0, p1, p3] = [await at('node0'), await at('node1'), await at('node3')];
      expect(p1[0]).toBeGreaterThan(p0[0]);
      expect(p1[1]).toBe(p0[1]);
      expect(p3[1]).toBeGreaterThan(p0[1]);
      await expect(end.locator('line[data-link="node0 node1"]').getAttribute('class')).resolves.toBe('link down');
      await expect(end.locator('line[data-link="node0 node1"] title').textContent()).resolves.toBe('node0 \u2194 node1: down at the end');
      // node0 -- node3 carries node3's 8 routes (node0 is its first neighbour); node0 -- node1, down, carried 16.
      await expect(end.locator('line[data-link="node0 node3"]').getAttribute('class')).resolves.toBe('link used');
      await expect(end.locator('line[data-link="node0 node3"] title').textContent()).resolves.toBe('node0 \u2194 node3: 8 routes through it at the end');
      await expect(end.locator('line[data-link="node0 node3"]').getAttribute('style')).resolves.toBe('stroke-width:3.00');
      await expect(end.locator('circle[data-machine="node0"]').getAttribute('class')).resolves.toBe('node all-routes');
      await expect(end.locator('circle[data-machine="node8"]').getAttribute('class')).resolves.toBe('node some-routes');
      await expect(end.locator('circle[data-machine="node8"] title').textContent()).resolves.toMatch(/^node8: routes to 3 of 8\n→ node0 via node5\n/);
      await expect(end.locator('circle[data-machine="node4"] title').textContent()).resolves.toBe('node4: routes not read (it was stopped at the end)');
      await expect(end.locator('text.caption').textContent()).resolves.toBe('mesh at the end: 9 machines, 12 links, 1 down, routes of 8 read');
      // The partition: its islands coloured, the links across dashed.
      const part = page.locator('svg.topology[data-network="mesh"][data-view="partition-1"]');
      await expect(part.locator('text.caption').textContent()).resolves.toBe('partition at 20.0 s: 4 | 5');
      const across = links.filter(([a, b]) => west.includes(a) !== west.includes(b)).map(([a, b]) => `${a} ${b}`);
      await expect(part.locator('line.down').evaluateAll((ls) => ls.map((l) => l.getAttribute('data-link')))).resolves.toEqual(across);
      await expect(part.locator('circle[data-machine="node3"] title').textContent()).resolves.toBe('node3: island 1');
      await expect(part.locator('circle[data-machine="node4"] title').textContent()).resolves.toBe('node4: island 2');
      // The fleet: one cell per machine, node0 booted, the rest restored, node5 outlined for its console check.
      const cells = page.locator('.fleet-grid[data-fleet="node"] .cell');
      await expect(cells.count()).resolves.toBe(9);
      await expect(cells.evaluateAll((cs) => cs.map((c) => c.className))).resolves.toEqual(names.map((m) => `cell ${m === 'node0' ? 'cold' : 'warm'}${m === 'node5' ? ' flagged' : ''}`));
      await expect(page.locator('.fleet-grid .cell[data-machine="node5"]').getAttribute('title')).resolves.toBe('node5: warm start in 9.5 s, console checks: kernel-oops');
      await page.screenshot({ path: join(out, 'topology.png'), fullPage: true });
    } finally {
      await close();
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});
