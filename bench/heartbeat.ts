// Benchmark: what heartbeats cost a command on a serial-login shell channel. The same profile boots twice in one
// process, once without a silence limit (the baseline) and once with guest.shell.silenceLimitSeconds; each runs the
// same commands (`true`, and `sleep 2`, which sees heartbeats), and the report is the ratio of median round trips.
//   node bench/heartbeat.ts [--profile x86_64-direct --commands 100 --limit 8]
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../machines/testbed/register.ts';
import { loadProfile } from '../harness/qemu/profile-loader.ts';
import type { MachineProfile } from '../harness/qemu/profile.ts';
import { QemuMachine } from '../harness/qemu/qemu-machine.ts';

const { values } = parseArgs({
  options: {
    profile: { type: 'string', default: 'x86_64-direct' },
    commands: { type: 'string', default: '100' },
    limit: { type: 'string', default: '8' },
  },
});
const COMMANDS = Number(values.commands);
const base = await loadProfile(values.profile!);
const serial = base.consoles.find((c) => c.device === 'serial')?.name ?? base.serialConsole;
if (!base.guest.login) throw new Error(`profile ${base.name} has no guest.login: a serial-login shell needs one`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(limitS: number | undefined): Promise<{ trueMs: number; sleepMs: number }> {
  const profile: MachineProfile = { ...base, name: `${base.name}-serial`, guest: { ...base.guest, shell: { kind: 'serial-login', console: serial, silenceLimitSeconds: limitS } } };
  const m = new QemuMachine(profile, { name: limitS ? 'heartbeats' : 'baseline', logDir: join(tmpdir(), `fleetlab-bench-heartbeat-${process.pid}`), accel: 'tcg' });
  try {
    await m.start();
    await m.waitForShell({ timeout: 300_000 });
    for (let i = 0; i < 5; i++) await m.succeed('true');
    const t: number[] = [];
    for (let i = 0; i < COMMANDS; i++) {
      const t0 = performance.now();
      await m.succeed('true');
      t.push(performance.now() - t0);
    }
    const s: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await m.succeed('sleep 2');
      s.push(performance.now() - t0);
    }
    return { trueMs: median(t), sleepMs: median(s) };
  } finally {
    await m.stop();
  }
}

const baseline = await measure(undefined);
const beating = await measure(Number(values.limit));
const f = (n: number) => n.toFixed(1);
console.log(`profile ${base.name} (serial-login on ${serial}, TCG), ${COMMANDS} commands each, medians:`);
console.log(`  true:     baseline ${f(baseline.trueMs)} ms, heartbeats (limit ${values.limit} s) ${f(beating.trueMs)} ms: ratio ${(beating.trueMs / baseline.trueMs).toFixed(2)}`);
console.log(`  sleep 2:  baseline ${f(baseline.sleepMs)} ms, heartbeats ${f(beating.sleepMs)} ms: ratio ${(beating.sleepMs / baseline.sleepMs).toFixed(2)}`);
