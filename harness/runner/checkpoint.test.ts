// Setup checkpoints through the real CLI (harness/runner/fixtures/checkpoint.ts): the first run of a case runs its
// setup and saves the checkpoint, the next restores it — machines with the state it holds (a file, a slow link, a
// switched generation, batman-adv routes) and their own identity, proved from JUnit and report.json; a corrupt checkpoint replays its
// steps and says so; --no-checkpoints always replays; the key changes with the setup, not with the body.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scenarioSourceHash } from './checkpoints.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');
const fixture = join(root, 'harness/runner/fixtures/checkpoint.ts');
const fleetlab = (args: string[], workers = 1) => execa(process.execPath, [cli, 'run', fixture, '--workers', String(workers), ...args], { cwd: root, reject: false, timeout: 400_000, env: { CI: '1', NO_COLOR: '1' } });

type Props = Record<string, string>;
/** Each JUnit test case's properties, by case name. */
async function junitProps(out: string): Promise<Map<string, Props>> {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['testsuite', 'testcase', 'property'].includes(n) }).parse(await readFile(join(out, 'junit.xml'), 'utf8'));
  const cases = doc.testsuites.testsuite.flatMap((s: { testcase: unknown[] }) => s.testcase) as Array<{ name: string; properties: { property: { name: string; value: string }[] } }>;
  return new Map(cases.map((c) => [c.name, Object.fromEntries(c.properties.property.map((p) => [p.name, p.value]))]));
}

describe('setup checkpoints', () => {
  let store: string;
  let first: Awaited<ReturnType<typeof fleetlab>>;
  let props: Map<string, Props>;
  let out: string;

  beforeAll(async () => {
    store = await mkdtemp(join(tmpdir(), 'fleetlab-cp-store-'));
    out = await mkdtemp(join(tmpdir(), 'fleetlab-cp-'));
    first = await fleetlab(['--repeat-each', '2', '--keep-snapshots', store, '--output', out]);
    props = await junitProps(out);
  }, 400_000);

  const lan = (i: number) => props.get(`checkpoint on a lan [x86_64-direct] (repeat ${i}/2)`)!;
  const gen = (i: number) => props.get(`checkpoint after a switch [x86_64-bios] (repeat ${i}/2)`)!;

  it('the first run of a case runs the setup and saves the checkpoint; the next starts from it', () => {
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    expect(lan(1)).toMatchObject({ 'machine.a.checkpoint': 'a file and a slow link', 'machine.a.checkpoint.mode': 'saved', 'machine.b.checkpoint.mode': 'saved' });
    expect(lan(2)).toMatchObject({ 'machine.a.checkpoint.mode': 'restored', 'machine.b.checkpoint.mode': 'restored' });
    expect(lan(2)['machine.a.checkpoint.made-by']).toContain('checkpoint on a lan[x86_64-direct]#1');
    const mesh = (i: number) => props.get(`checkpoint of a mesh [x86_64-direct] (repeat ${i}/2)`)!;
    expect([mesh(1)['machine.a.checkpoint.mode'], mesh(2)['machine.a.checkpoint.mode']]).toEqual(['saved', 'restored']);
    expect(gen(1)['machine.checkpoint.mode']).toBe('saved');
    expect(gen(2)['machine.checkpoint.mode']).toBe('restored');
    // The restored case did not run the setup's steps: its output says so, and has no setup step.
    expect(first.stdout).toMatch(/start m from checkpoint "generation 2 switched"/);
    expect(first.stdout).toMatch(/checkpoint after a switch\[x86_64-bios\]#2 \([\d.]+ s; m: \w+, checkpoint "generation 2 switched" restored/);
  });

  it('a restored machine holds the checkpoint\'s state (its file, the slow link, generation 2, the mesh routes) with its own identity', async () => {
    // The bodies asserted the file, the hostname, the 300 ms round trip and generation 2 (both repeats passed).
    expect(lan(2).token).toBe(lan(1).token);
    expect(lan(2)['machine-id.a']).toMatch(/^[0-9a-f]{32}$/);
    expect(lan(2)['machine-id.a']).not.toBe(lan(1)['machine-id.a']);
    expect(lan(2)['machine-id.b']).not.toBe(lan(1)['machine-id.b']);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: Array<{ id: string; attempts: Array<{ machines: Array<{ facts: { checkpoint?: { mode: string; name: string } } }> }> }> };
    const restored = report.results.filter((c) => c.attempts[0]!.machines.every((m) => m.facts.checkpoint?.mode === 'restored'));
    expect(restored.map((c) => c.id).sort()).toEqual(['checkpoint after a switch[x86_64-bios]#2', 'checkpoint of a mesh[x86_64-direct]#2', 'checkpoint on a lan[x86_64-direct]#2'].map((id) => `harness/runner/fixtures/checkpoint.ts::${id}`));
  });

  it('a corrupt checkpoint is dropped, its steps replay, and the case says so', async () => {
    const dirs = await readdir(store);
    const lanDir = (await Promise.all(dirs.map(async (d) => ((JSON.parse(await readFile(join(store, d, 'meta.json'), 'utf8')) as { name: string }).name === 'a file and a slow link' ? d : undefined)))).find(Boolean)!;
    await truncate(join(store, lanDir, 'a', 'state'), 4096);
    const out2 = await mkdtemp(join(tmpdir(), 'fleetlab-cp-'));
    const r = await fleetlab(['--grep', 'lan', '--keep-snapshots', store, '--output', out2]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const p = [...(await junitProps(out2)).values()][0]!;
    expect(p['machine.a.checkpoint.restore-failed']).toBeTruthy();
    expect(p['machine.a.checkpoint.mode']).toBe('saved');
    expect(r.stdout).toMatch(/restoring checkpoint "a file and a slow link" failed, its steps replayed/);
    expect(r.stdout).toMatch(/setup: checkpoint "a file and a slow link"/);
  });

  it('a repeat on another worker waits for the checkpoint the other is making, then restores it', async () => {
    const out4 = await mkdtemp(join(tmpdir(), 'fleetlab-cp-'));
    const r = await fleetlab(['--grep', 'lan', '--repeat-each', '2', '--output', out4], 2);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/on 2 workers/);
    const p = await junitProps(out4);
    // Whichever repeat claims the key first makes it (the two start at once); the other waits and restores.
    expect([1, 2].map((i) => p.get(`checkpoint on a lan [x86_64-direct] (repeat ${i}/2)`)!['machine.a.checkpoint.mode']).sort()).toEqual(['restored', 'saved']);
    expect(r.stdout).toMatch(/wait for checkpoint "a file and a slow link" \(another case is making it\)/);
  }, 200_000);

  it('--no-checkpoints runs the setup in every case and saves nothing', async () => {
    const out3 = await mkdtemp(join(tmpdir(), 'fleetlab-cp-'));
    const r = await fleetlab(['--grep', 'lan', '--repeat-each', '2', '--no-checkpoints', '--output', out3]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    for (const p of (await junitProps(out3)).values()) expect(p).toMatchObject({ 'machine.a.checkpoint.mode': 'replayed', 'machine.a.checkpoint.reason': 'checkpoints are off (--no-checkpoints)' });
  }, 200_000);
});

describe('a checkpoint key', () => {
  it('changes with the setup and with the files the scenario imports, not with its run body', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-cp-key-'));
    const file = join(dir, 's.ts');
    const body = 'async run({ step }) { await step("after", async () => 1); }';
    const write = (setup: string, run = body) => writeFile(file, `import { helper } from './helper.ts';\nexport const s = scenario({ setup: { checkpoint: 'x', run: async () => ${setup} }, ${run} });\n`);
    await writeFile(join(dir, 'helper.ts'), 'export const helper = 1;\n');
    await write('helper');
    const base = await scenarioSourceHash(file, body);
    await write('helper', body.replace('"after"', '"after, renamed"'));
    expect(await scenarioSourceHash(file, body.replace('"after"', '"after, renamed"')), 'a changed step after the checkpoint keeps its key').toBe(base);
    await write('helper + 1');
    expect(await scenarioSourceHash(file, body), 'a changed setup step makes a new key').not.toBe(base);
    await write('helper');
    expect(await scenarioSourceHash(file, body)).toBe(base);
    await writeFile(join(dir, 'helper.ts'), 'export const helper = 2;\n');
    expect(await scenarioSourceHash(file, body), 'a changed imported helper makes a new key').not.toBe(base);
  });
});
