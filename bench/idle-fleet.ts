// Benchmark: what fleetlab's broadcast window and fleet placement save an idle fleet, against neither, in windows of
// one run (bench/fixtures/idle-fleet.ts through `fleetlab run`): N x86_64-bios nodes on a batman-adv grid at OGM 1 s.
// Prints, per setting, the mean of its two windows: % of a core per node (QEMU) and the switch's, an interior node's
// receive and timer interrupts per second, and each setting's cost as a share of "plain"; writes the figures as JSON.
//   node bench/idle-fleet.ts [--nodes 16 --window 30 --json idle-fleet.json]
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '16' }, window: { type: 'string', default: '30' }, json: { type: 'string' } } });
const root = join(import.meta.dirname, '..');
const out = await mkdtemp(join(tmpdir(), 'fl-bench-idle-fleet-'));
try {
  const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', join(root, 'bench/fixtures/idle-fleet.ts'), '--output', out], {
    cwd: root,
    reject: false,
    timeout: 3_600_000,
    env: { CI: '1', NO_COLOR: '1', FLEETLAB_BENCH_NODES: values.nodes, FLEETLAB_BENCH_WINDOW_S: values.window },
  });
  if (r.exitCode !== 0) throw new Error(`fleetlab run bench/fixtures/idle-fleet.ts exited ${r.exitCode}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  const junit = await readFile(join(out, 'junit.xml'), 'utf8');
  const props = Object.fromEntries([...junit.matchAll(/<property name="(idle\.[^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, Number(m[2])]));
  const mean = (key: string, what: string) => (props[`idle.${key}.1.${what}`]! + props[`idle.${key}.2.${what}`]!) / 2;
  const keys = ['plain', 'window', 'window-placed'];
  console.log(`idle ${values.nodes}-node batman-adv grid of x86_64-bios (OGM 1 s) under this host's accelerator, two ${values.window} s windows per setting (${new Date().toISOString().slice(0, 10)})`);
  const figures: Record<string, number | string> = { date: new Date().toISOString(), nodes: Number(values.nodes), windowS: Number(values.window) };
  for (const k of keys) {
    const cpu = mean(k, 'cpu.pct');
    console.log(`  ${k.padEnd(14)} ${cpu.toFixed(2).padStart(5)} % of a core per node (${((cpu / mean('plain', 'cpu.pct')) * 100).toFixed(0)} % of plain), switch ${mean(k, 'switch.cpu.pct').toFixed(2)} %, ${mean(k, 'rx.irq.per.s').toFixed(1)} receive and ${mean(k, 'timer.irq.per.s').toFixed(1)} timer interrupts/s`);
    for (const w of ['cpu.pct', 'switch.cpu.pct', 'rx.irq.per.s', 'timer.irq.per.s']) figures[`${k}.${w}`] = Number(mean(k, w).toFixed(2));
  }
  if (values.json) await writeFile(values.json, JSON.stringify({ ...figures, windows: props }, null, 2) + '\n');
  console.log(JSON.stringify(figures));
} finally {
  await rm(out, { recursive: true, force: true });
}
