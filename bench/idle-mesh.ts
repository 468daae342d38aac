// Benchmark: what an idle batman-adv mesh node costs the host under TCG, with the testbed's batman-adv (built without
// network coding, as batman-adv ships since 2025.4) against Debian's (network coding compiled in, whose worker re-arms
// every 10 ms) on the same guests in the same run, at the testbed's OGM interval (250 ms) and at batman's default
// (1 s), and with no batman at all. Runs bench/fixtures/idle-mesh.ts through `fleetlab run`; prints % of a core per
// node (the QEMU processes), node 0's timer interrupts per second, Debian's cost as a multiple of the testbed's, and
// writes the figures as JSON.
//   node bench/idle-mesh.ts [--nodes 8 --window 20 --json idle-mesh.json]
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '8' }, window: { type: 'string', default: '20' }, json: { type: 'string' } } });
const root = join(import.meta.dirname, '..');
const out = await mkdtemp(join(tmpdir(), 'fl-bench-idle-'));
try {
  const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', join(root, 'bench/fixtures/idle-mesh.ts'), '--output', out], {
    cwd: root,
    reject: false,
    timeout: 3_600_000,
    env: { CI: '1', NO_COLOR: '1', FLEETLAB_BENCH_NODES: values.nodes, FLEETLAB_BENCH_WINDOW_S: values.window },
  });
  if (r.exitCode !== 0) throw new Error(`fleetlab run bench/fixtures/idle-mesh.ts exited ${r.exitCode}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  const junit = await readFile(join(out, 'junit.xml'), 'utf8');
  const props = Object.fromEntries([...junit.matchAll(/<property name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const num = (k: string) => Number(props[k]);
  const rows = ['testbed.250', 'testbed.1000', 'debian.250', 'debian.1000', 'none'];
  const label: Record<string, string> = { 'testbed.250': 'testbed batman-adv, OGM 250 ms', 'testbed.1000': 'testbed batman-adv, OGM 1 s', 'debian.250': "Debian's batman-adv, OGM 250 ms", 'debian.1000': "Debian's batman-adv, OGM 1 s", none: 'no batman' };
  console.log(`idle ${values.nodes}-node batman-adv ring on x86_64-direct under TCG, ${values.window} s windows (${new Date().toISOString().slice(0, 10)})`);
  for (const k of rows) console.log(`  ${label[k]!.padEnd(34)} ${num(`idle.${k}.cpu.pct`).toFixed(2).padStart(6)} % of a core per node (max ${num(`idle.${k}.cpu.max.pct`).toFixed(2)}), ${num(`idle.${k}.timer.irq.per.s`).toFixed(0).padStart(4)} timer interrupts/s`);
  console.log(`network-coding functions loaded: testbed ${props['batman.nc.functions.testbed']}, Debian ${props['batman.nc.functions.debian']}`);
  const ratio = (a: string, b: string) => num(`idle.${a}.cpu.pct`) / num(`idle.${b}.cpu.pct`);
  console.log(`Debian's module costs ${ratio('debian.250', 'testbed.250').toFixed(1)}x the testbed's at 250 ms, ${ratio('debian.1000', 'testbed.1000').toFixed(1)}x at 1 s (goal: the testbed's at most 1 % of a core)`);
  const figures = { date: new Date().toISOString(), nodes: Number(values.nodes), windowS: Number(values.window), ...Object.fromEntries(Object.entries(props).filter(([k]) => k.startsWith('idle.') || k.startsWith('batman.nc.')).map(([k, v]) => [k, Number(v)])) };
  if (values.json) await writeFile(values.json, JSON.stringify(figures, null, 2) + '\n');
  console.log(JSON.stringify(figures));
} finally {
  await rm(out, { recursive: true, force: true });
}
