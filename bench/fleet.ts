// Benchmark: a fleet on one host. For each profile and fleet size, runs bench/fixtures/fleet.ts through `fleetlab
// run`: N nodes of the profile on a batman-adv grid (OGM 1 s), started from one snapshot (clones share its RAM), and
// prints the time to every shell (the case's start step), the time until every node has a route to every other, the
// idle CPU per node (QEMU, and the switch's share), the PSS and RSS of a clone, and how much host memory the fleet
// took; writes the figures as JSON. Issue #28's goals: ≤ 1 % of a core and ≤ 48 MiB PSS per idle meshed node, 128
// nodes started and converged in ≤ 4 minutes.
// The lean profile made to be many (x86_64-micro) by default; `--profile x86_64-micro,x86_64-direct` compares.
// A fleet that does not converge within its time (half a minute per node, at least 30 min; --converge-min sets it)
// gets its row all the same, saying so and what was lacking, with its idle cost.
// `--reach neighbours` waits instead until every node has an answer from each of its grid neighbours (issue #28's
// 256 nodes "each pinging its neighbours"), each link pinged once.
//   node bench/fleet.ts [--nodes 32,64,128 --window 20 --profile x86_64-micro --converge-min M --reach all|neighbours --json fleet.json]
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '32,64,128' }, window: { type: 'string', default: '20' }, profile: { type: 'string', default: 'x86_64-micro' }, 'converge-min': { type: 'string' }, reach: { type: 'string', default: 'all' }, json: { type: 'string' } } });
const sizes = values.nodes.split(',').map(Number);
const profiles = values.profile.split(',').filter(Boolean);
if (sizes.some((n) => !Number.isInteger(n) || n < 2)) throw new Error(`--nodes ${values.nodes}: give fleet sizes of at least 2, comma-separated`);
const convergeMin = values['converge-min'] === undefined ? undefined : Number(values['converge-min']);
if (values.reach !== 'all' && values.reach !== 'neighbours') throw new Error(`--reach ${values.reach}: give all (every node routed to every other) or neighbours (every node answered by its grid neighbours)`);
if (convergeMin !== undefined && !(convergeMin > 0)) throw new Error(`--converge-min ${values['converge-min']}: give the minutes a fleet has to converge, a positive number`);
const root = join(import.meta.dirname, '..');
const rows: Array<Record<string, number | string>> = [];
console.log(`fleets of ${profiles.join(', ')} on a batman-adv grid (⌈√N⌉ wide, OGM 1 s) under this host's accelerator, ${values.window} s idle windows (${new Date().toISOString().slice(0, 10)})`);
for (const [profile, n] of profiles.flatMap((p) => sizes.map((k) => [p, k] as const))) {
  const out = await mkdtemp(join(tmpdir(), 'fl-bench-fleet-'));
  try {
    const t = performance.now();
    const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', join(root, 'bench/fixtures/fleet.ts'), '--output', out], {
      cwd: root,
      reject: false,
      timeout: (Math.max(60, n, (convergeMin ?? n / 2) + 30) + 10) * 60_000, // the case's own timeout (bench/fixtures/fleet.ts) and its teardown
      env: { CI: '1', NO_COLOR: '1', FLEETLAB_BENCH_NODES: String(n), FLEETLAB_BENCH_WINDOW_S: values.window, FLEETLAB_BENCH_PROFILE: profile, FLEETLAB_BENCH_REACH: values.reach, ...(convergeMin ? { FLEETLAB_BENCH_CONVERGE_MIN: String(convergeMin) } : {}) },
    });
    if (r.exitCode !== 0) throw new Error(`fleetlab run bench/fixtures/fleet.ts (${n} nodes of ${profile}) exited ${r.exitCode}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: Array<{ attempts: Array<{ steps: Array<{ name: string; durationMs: number }>; properties?: Record<string, string> }> }> };
    const attempt = report.results[0]!.attempts.at(-1)!;
    const startMs = attempt.steps.find((s) => s.name.startsWith('start '))!.durationMs;
    const props = Object.entries(attempt.properties ?? {}).filter(([k]) => k.startsWith('fleet.')).map(([k, v]) => [k.slice(6), v] as const);
    const texts = ['unconverged', 'unreached'];
    const p = Object.fromEntries(props.filter(([k]) => !texts.includes(k)).map(([k, v]) => [k, Number(v)]));
    const [unconverged, unreached] = texts.map((k) => props.find(([x]) => x === k)?.[1]);
    const row = { profile, nodes: n, reach: values.reach, startMs: Math.round(startMs), ...p, ...(unconverged ? { unconverged } : {}), ...(unreached ? { unreached } : {}), runMs: Math.round(performance.now() - t) };
    rows.push(row);
    const tookMiB = p['memavailable.start.mib']! - p['memavailable.idle.mib']!;
    const reachedMs = values.reach === 'neighbours' ? p['neighbours.ms']! : p['converged.ms']!;
    const what = values.reach === 'neighbours' ? 'every node answered by its grid neighbours' : 'converged';
    const converged = unconverged ? `did not converge ${unconverged}` : unreached ? `not every node answered by its grid neighbours: ${unreached}` : `${what} ${(reachedMs / 1000).toFixed(1)} s later (${((startMs + reachedMs) / 1000).toFixed(1)} s in all)`;
    console.log(`  ${profile}, ${String(n).padStart(4)} nodes: every shell in ${(startMs / 1000).toFixed(1)} s, ${converged}; idle ${p['idle.cpu.pct']!.toFixed(2)} % of a core per node (max ${p['idle.cpu.max.pct']!.toFixed(2)}, switch ${p['idle.switch.cpu.pct']!.toFixed(3)}), ${p['idle.timer.irq.per.s']} timer irq/s; clone PSS ${p['clone.pss.mib']} MiB (RSS ${p['clone.rss.mib']}), first node ${p['maker.pss.mib']} MiB`);
    console.log(`        host memory: ${p['memavailable.start.mib']} MiB available once all started, ${p['memavailable.idle.mib']} MiB idle (${tookMiB >= 0 ? `${tookMiB} MiB more in use` : `${-tookMiB} MiB freed`} while converging)`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
console.log('goals (issue #28): ≤ 1 % of a core and ≤ 48 MiB PSS per idle meshed node; 128 nodes started and converged in ≤ 240 s');
const figures = { date: new Date().toISOString(), profiles, windowS: Number(values.window), fleets: rows };
if (values.json) await writeFile(values.json, JSON.stringify(figures, null, 2) + '\n');
console.log(JSON.stringify(figures));
