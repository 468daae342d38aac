// scenarios/mesh-partition.ts through the real CLI: a batman-adv ring of four testbed guests converges, splits into
// islands, heals, and routes around a lossy link and a one-way cut; convergence times land in JUnit as numbers and
// every frame in mesh.pcap, which tcpdump reads back (batman-adv's ethertype 0x4305 among them); and
// scenarios/mesh-radio.ts, a mesh over radio links whose node walks.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('mesh partition', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof execa>>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-mesh-'));
    run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/mesh-partition.ts', '--output', dir], { cwd: root, reject: false, timeout: 600_000, env: { CI: '1', NO_COLOR: '1' } });
  }, 620_000);

  it('passes', () => {
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
  });

  it('JUnit carries the convergence times as numbers', async () => {
    const xml = new XMLParser({ ignoreAttributes: false }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
    const props = ([] as Array<{ '@_name': string; '@_value': string }>).concat(xml.testsuites.testsuite.testcase.properties.property);
    const get = (n: string) => props.find((p) => p['@_name'] === n)?.['@_value'];
    for (const name of ['mesh.convergence.initial.ms', 'mesh.convergence.heal.ms']) {
      expect(get(name), name).toMatch(/^\d+$/);
      expect(Number(get(name))).toBeLessThan(120_000);
    }
  });

  it('mesh.pcap holds batman-adv frames that tcpdump reads', async () => {
    const xml = await readFile(join(dir, 'junit.xml'), 'utf8');
    const pcap = /\[\[ATTACHMENT\|([^\]]+mesh\.pcap)\]\]/.exec(xml)?.[1];
    expect(pcap).toBeTruthy();
    const r = await execa('tcpdump', ['-nn', '-r', pcap!, 'ether proto 0x4305'], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).length).toBeGreaterThan(100);
  });
});

describe('mesh over radio links', () => {
  it('scenarios/mesh-radio.ts passes: routed through the row, rerouted when d walks to a, cut off when it walks away', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-radio-'));
    const run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'scenarios/mesh-radio.ts', '--output', dir], { cwd: root, reject: false, timeout: 600_000, env: { CI: '1', NO_COLOR: '1' } });
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
    const xml = await readFile(join(dir, 'junit.xml'), 'utf8');
    expect(xml).toMatch(/name="radio.reroute.ms" value="\d+"/);
    // The network's log has the moves, with what d was in range of.
    const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as { results: Array<{ attempts: Array<{ network: Array<{ event: string }> }> }> };
    expect(report.results[0]!.attempts[0]!.network.map((e) => e.event)).toEqual(expect.arrayContaining(['network mesh: d moved to (0, 1): in range of a', 'network mesh: d moved to (10, 10): in range of none']));
  }, 620_000);
});
