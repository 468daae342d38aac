// scenarios/fleet-mesh.ts's two 16-node fleets through the real CLI: declared by count and topology (a 4 × 4 grid and
// a ring), each converges (every node exactly 15 routes), idles while its cost is measured, splits into two islands
// of 8 whose nodes reach exactly their island, heals, and halts a staged rollout of a broken generation at its first
// wave, rolled back; one machine of the run boots, the other 31 restore its snapshot; the figures are JUnit properties.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('fleet mesh of 16', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof execa>>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-fleet-'));
    run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/fleet-mesh.ts', '--grep', 'of 16', '--workers', '1', '--output', dir], { cwd: root, reject: false, timeout: 1_500_000, env: { CI: '1', NO_COLOR: '1' } });
  }, 1_520_000);

  it('both fleets pass: the grid and the ring', () => {
    expect(run.exitCode, String(run.stdout).slice(-5000) + String(run.stderr).slice(-2000)).toBe(0);
    // The case line shows the fleet as one: its size, accelerator, cold and warm starts.
    expect(String(run.stdout)).toMatch(/✓ passed scenarios\/fleet-mesh\.ts::fleet mesh: grid of 16\[x86_64-bios\] \([\d.]+ s; node \(16\): \w+, (1 cold [\d.]+ s, 15 warm|16 warm) /);
    expect(String(run.stdout)).toMatch(/✓ passed scenarios\/fleet-mesh\.ts::fleet mesh: ring of 16\[x86_64-bios\] \([\d.]+ s; node \(16\): \w+, (1 cold [\d.]+ s, 15 warm|16 warm) /);
  });

  it('each case has its 16 machines node0 … node15, started with the mesh held; one machine of the run booted, the rest restored', async () => {
    const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as { results: Array<{ attempts: Array<{ output: string[]; machines: Array<{ name: string; facts?: { start?: { mode: string } } }> }> }> };
    const machines = report.results.map((r) => r.attempts.at(-1)!.machines);
    // The mesh dropped every frame while the fleet started (the first nodes up idle unmeshed while the rest restore).
    for (const r of report.results) {
      const out = r.attempts.at(-1)!.output.join('\n');
      expect(out).toMatch(/a fleet of 16: network mesh held \(every frame dropped\) until every machine has started/);
      expect(out.indexOf('network mesh: released')).toBeGreaterThan(out.indexOf('network mesh: held'));
    }
    for (const ms of machines) expect(ms.map((m) => m.name)).toEqual(Array.from({ length: 16 }, (_, i) => `node${i}`));
    const modes = machines.flat().map((m) => m.facts?.start?.mode);
    expect(modes.filter((m) => m === 'cold')).toHaveLength(1);
    expect(modes.filter((m) => m === 'warm')).toHaveLength(31);
  });

  it("report.json has each mesh as report.html draws it: the topology's links and places, the partition's islands, every node's 15 routes at the end", async () => {
    type Picture = { name: string; members: string[]; links: Array<{ a: string; b: string; up: boolean }>; positions: Record<string, [number, number]>; partitions: Array<{ groups: string[][] }>; routes: Record<string, Array<[string, string]>> };
    const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as { results: Array<{ scenario: string; attempts: Array<{ topology: Picture[] }> }> };
    for (const r of report.results) {
      const [p] = r.attempts.at(-1)!.topology;
      expect(p!.name).toBe('mesh');
      expect(p!.members).toHaveLength(16);
      expect(p!.links).toHaveLength(/grid/.test(r.scenario) ? 24 : 16);
      expect(p!.links.every((l) => l.up)).toBe(true);
      expect(Object.keys(p!.positions)).toHaveLength(16);
      expect(p!.partitions.map((x) => x.groups.map((g) => g.length))).toEqual([[8, 8]]);
      for (const m of p!.members) {
        const routes = p!.routes[m]!;
        expect(routes.map(([dest]) => dest).sort(), `${r.scenario}: ${m}'s routes`).toEqual(p!.members.filter((x) => x !== m).sort());
        // Every next hop is a neighbour: a node the topology links it to.
        const neighbours = p!.links.filter((l) => l.a === m || l.b === m).map((l) => (l.a === m ? l.b : l.a));
        for (const [, via] of routes) expect(neighbours).toContain(via);
      }
    }
  });

  it('JUnit carries convergence, partition and heal times, the idle cost per node, the peak host memory and the halted rollout', async () => {
    const xml = new XMLParser({ ignoreAttributes: false }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
    const cases = ([] as Array<{ '@_name': string; properties: { property: Array<{ '@_name': string; '@_value': string }> } }>).concat(xml.testsuites.testsuite.testcase);
    expect(cases).toHaveLength(2);
    for (const c of cases) {
      const get = (n: string) => c.properties.property.find((p) => p['@_name'] === n)?.['@_value'];
      for (const name of ['fleet.convergence.initial.ms', 'fleet.partition.settled.ms', 'fleet.convergence.heal.ms', 'rollout.switch.ms', 'rollout.rollback.ms']) expect(get(name), `${c['@_name']}: ${name}`).toMatch(/^\d+$/);
      // An idle meshed node under TCG takes a few % of a core (docs/performance.md); a clone's PSS well under its 256 MiB.
      expect(Number(get('fleet.idle.cpu.pct'))).toBeGreaterThan(0);
      expect(Number(get('fleet.idle.cpu.max.pct'))).toBeGreaterThanOrEqual(Number(get('fleet.idle.cpu.pct')));
      expect(Number(get('fleet.idle.pss.mib'))).toBeGreaterThan(16);
      expect(Number(get('fleet.idle.pss.mib'))).toBeLessThan(256);
      // Sixteen QEMUs' worth at least above where the case began.
      expect(Number(get('host.memory.peak.mib')) - Number(get('host.memory.start.mib'))).toBeGreaterThan(16 * 32);
      expect(get('rollout.halted.wave')).toBe('1');
    }
  });
});
