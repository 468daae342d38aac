// Benchmark: time to shell through fleetlab vs raw QEMU to the same console marker, and shell commands
// per second vs the NixOS test driver's framing. Baselines run in the same process, on the same testbed.
// With --profiles, also the time to shell of every machine profile (real firmware and bootloaders), as a ratio to
// the direct-boot profile measured in the same process. With --warm, case start to shell ready cold (start() +
// waitForShell()) against warm (startWarm() restoring a snapshot of the same profile), alternated, per profile.
// With --checkpoint (alone), a case that reaches "generation 2 booted" on x86_64-uefi by replaying its setup steps
// against one that restores the checkpoint (bench/fixtures/checkpoint.ts through `fleetlab run`; case durations from
// report.json, median of --checkpoint-runs, the checkpoint made once beforehand and not measured).
// With --reboot (alone), a guest's reboot (command to shell answering again) through the testbed's shutdown agent
// against busybox init's own way (the agent killed first), alternated on one machine per profile.
//   npm run bench:boot [-- --runs N --commands N --profiles all|name,name --profile-runs N --warm name,name --warm-runs N]
//   node bench/boot.ts --checkpoint [--checkpoint-machine x86_64-uefi --checkpoint-runs 3]
//   node bench/boot.ts --reboot [--reboot-profiles x86_64-bios,x86_64-uefi,aarch64-uboot --reboot-runs 5]
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../machines/testbed/register.ts';
import { ensureTestbed } from '../machines/testbed/build.ts';
import { testbedRecipes } from '../machines/testbed/index.ts';
import { listProfiles, loadProfile } from '../harness/qemu/profile-loader.ts';
import { ensureBootDisk } from '../machines/testbed/boot-disk.ts';
import { qemuArgv, consoleSocket } from '../harness/qemu/qemu-argv.ts';
import { QemuMachine } from '../harness/qemu/qemu-machine.ts';
import { SnapshotStore } from '../harness/qemu/warm-start.ts';
import { BACKDOOR_BANNER } from '../harness/shell/backdoor-shell.ts';
import { pollUntil, Deadline } from '../harness/time/deadline.ts';
import { existsSync } from 'node:fs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    commands: { type: 'string', default: '200' },
    profile: { type: 'string', default: 'x86_64-direct' },
    profiles: { type: 'string' },
    'profile-runs': { type: 'string', default: '1' },
    warm: { type: 'string' },
    'warm-runs': { type: 'string', default: '3' },
    checkpoint: { type: 'boolean', default: false },
    'checkpoint-machine': { type: 'string', default: 'x86_64-uefi' },
    'checkpoint-runs': { type: 'string', default: '3' },
    reboot: { type: 'boolean', default: false },
    'reboot-profiles': { type: 'string', default: 'x86_64-bios,x86_64-uefi,aarch64-uboot' },
    'reboot-runs': { type: 'string', default: '5' },
  },
});
const RUNS = Number(values.runs);
const COMMANDS = Number(values.commands);
const profile = await loadProfile(values.profile!);
if (profile.boot.kind !== 'testbed') throw new Error('bench/boot.ts needs a testbed profile');
const img = await ensureTestbed(testbedRecipes[profile.boot.image]!);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
if (values.checkpoint) {
  await checkpointBench(values['checkpoint-machine']!, Number(values['checkpoint-runs']));
  process.exit(0);
}
if (values.reboot) {
  await rebootBench(values['reboot-profiles']!.split(','), Number(values['reboot-runs']));
  process.exit(0);
}

/** Raw QEMU, same argv, not paused, no fleetlab: ms until the banner arrives on the hvc0 socket. Returns the connected socket and process. */
async function rawBoot(): Promise<{ ms: number; sock: Socket; kill: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fl-bench-'));
  const argv = qemuArgv(profile, { name: 'rawbench', runDir: dir, accel: 'tcg', kernel: img.kernel, initrd: img.initrd, append: `${profile.boot.kind === 'testbed' ? profile.boot.append : ''} fleetlab.hostname=rawbench` }).filter((a) => a !== '-S');
  const t0 = performance.now();
  const proc = spawn(profile.qemu.binary, argv, { stdio: 'ignore' });
  const path = consoleSocket(dir, 'hvc0');
  await pollUntil(() => (existsSync(path) ? true : undefined), { deadline: Deadline.after(10_000, 'socket'), intervalMs: 5 });
  const sock = createConnection({ path });
  let buf = '';
  await new Promise<void>((resolve) => {
    const on = (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes(BACKDOOR_BANNER)) {
        sock.off('data', on);
        resolve();
      }
    };
    sock.on('data', on);
  });
  const ms = performance.now() - t0;
  return {
    ms,
    sock,
    kill: async () => {
      sock.destroy();
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function fleetlabBoot(p = profile): Promise<{ ms: number; m: QemuMachine }> {
  const m = new QemuMachine(p, { name: 'flbench', accel: 'tcg' });
  const t0 = performance.now();
  await m.start();
  await m.waitForShell();
  return { ms: performance.now() - t0, m };
}

/** The NixOS test driver's framing: output through base64 -w 0, then a second round trip for the exit status. */
async function nixosDriverCommands(sock: Socket, n: number): Promise<number> {
  let buf = '';
  sock.on('data', (d: Buffer) => (buf += d.toString('latin1')));
  const line = async () => {
    for (;;) {
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return l;
      }
      await new Promise((r) => setImmediate(r));
    }
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    sock.write('( set -eu; true ) | (base64 -w 0; echo)\n');
    await line();
    // nixpkgs asks for ${PIPESTATUS[0]}; busybox ash has no PIPESTATUS, so $? stands in: same round trip.
    sock.write('echo $?\n');
    await line();
  }
  return (n / (performance.now() - t0)) * 1000;
}

async function fleetlabCommands(m: QemuMachine, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await m.execute('true');
  return (n / (performance.now() - t0)) * 1000;
}

const raw: number[] = [];
const fl: number[] = [];
let rawRate = 0;
let flRate = 0;
for (let i = 0; i < RUNS; i++) {
  // Alternate so drift on a busy host hits both sides alike.
  const r = await rawBoot();
  raw.push(r.ms);
  if (i === 0) rawRate = await nixosDriverCommands(r.sock, COMMANDS);
  await r.kill();
  const f = await fleetlabBoot();
  fl.push(f.ms);
  if (i === 0) flRate = await fleetlabCommands(f.m, COMMANDS);
  await f.m.stop();
}
const rawMs = median(raw);
const flMs = median(fl);
console.log(`profile ${profile.name}, accel tcg, ${RUNS} runs (median), ${COMMANDS} commands`);
console.log(`time to shell: raw QEMU to "${BACKDOOR_BANNER}" ${rawMs.toFixed(0)} ms, fleetlab start()+waitForShell() ${flMs.toFixed(0)} ms, ratio ${(flMs / rawMs).toFixed(3)} (goal <= 1.05)`);
console.log(`commands/s: NixOS driver framing ${rawRate.toFixed(1)}, fleetlab ${flRate.toFixed(1)}, speed-up ${(flRate / rawRate).toFixed(2)}x (goal >= 5x)`);

if (values.profiles) {
  const names = values.profiles === 'all' ? listProfiles() : values.profiles.split(',');
  const runs = Number(values['profile-runs']);
  console.log(`\ntime to shell per profile (TCG, median of ${runs}), ratio to ${profile.name} (${flMs.toFixed(0)} ms above):`);
  for (const name of names) {
    const p = await loadProfile(name);
    // The first start builds the boot disk if the cache has none: not part of the measurement.
    if (p.boot.kind === 'testbed-disk') await ensureBootDisk(await ensureTestbed(testbedRecipes[p.boot.image]!), p.boot.layout, p.boot.append);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const f = await fleetlabBoot(p);
      times.push(f.ms);
      await f.m.stop();
    }
    const ms = median(times);
    console.log(`  ${name.padEnd(16)} ${p.firmware.kind.padEnd(9)} ${p.boot.kind === 'testbed-disk' ? p.boot.layout.padEnd(15) : p.boot.kind.padEnd(15)} ${(ms / 1000).toFixed(1).padStart(5)} s  ${(ms / flMs).toFixed(2)}x`);
  }
}
if (values.warm) {
  const names = values.warm === 'default' ? ['x86_64-direct', 'x86_64-uefi', 'aarch64-uefi'] : values.warm.split(',');
  const runs = Number(values['warm-runs']);
  console.log(`\ncase start to shell ready, cold vs warm (TCG, median of ${runs}, alternated):`);
  for (const name of names) {
    const p = await loadProfile(name);
    const store = await SnapshotStore.open();
    try {
      // The snapshot is made once (its boot is not measured), as a run's first case of this shape makes it.
      const first = new QemuMachine(p, { name: 'warmbench', accel: 'tcg' });
      const made = await first.startWarm(store);
      await first.stop();
      if (!made.snapshot) throw new Error(`${name}: no snapshot taken (${made.reason})`);
      const cold: number[] = [];
      const warm: number[] = [];
      for (let i = 0; i < runs; i++) {
        const c = await fleetlabBoot(p);
        cold.push(c.ms);
        await c.m.stop();
        const w = new QemuMachine(p, { name: 'warmbench', accel: 'tcg' });
        const t0 = performance.now();
        const r = await w.startWarm(store);
        warm.push(performance.now() - t0);
        await w.stop();
        if (r.mode !== 'warm') throw new Error(`${name}: expected a restore, got a cold start (${r.reason})`);
      }
      const c = median(cold);
      const w = median(warm);
      console.log(`  ${name.padEnd(16)} cold ${(c / 1000).toFixed(2).padStart(6)} s   warm ${(w / 1000).toFixed(2).padStart(5)} s   ${(c / w).toFixed(1)}x faster (goal >= 5x on x86_64-uefi)`);
    } finally {
      await store.close();
    }
  }
}
process.exit(0);

/** Case durations (ms) of a `fleetlab run` of bench/fixtures/checkpoint.ts, each case's checkpoint mode checked. */
async function fleetlabCases(machine: string, mode: 'replayed' | 'saved' | 'restored', args: string[]): Promise<number[]> {
  const out = await mkdtemp(join(tmpdir(), 'fl-bench-cp-'));
  try {
    const root = join(import.meta.dirname, '..');
    const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', join(root, 'bench/fixtures/checkpoint.ts'), '--machine', machine, '--workers', '1', '--output', out, ...args], { cwd: root, reject: false, timeout: 3_600_000, env: { CI: '1', NO_COLOR: '1' } });
    if (r.exitCode !== 0) throw new Error(`fleetlab run ${args.join(' ')} exited ${r.exitCode}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: Array<{ id: string; durationMs: number; attempts: Array<{ machines: Array<{ facts?: { checkpoint?: { mode: string } } }> }> }> };
    for (const c of report.results) {
      const got = c.attempts.at(-1)!.machines[0]?.facts?.checkpoint?.mode;
      if (got !== mode) throw new Error(`${c.id}: checkpoint ${got ?? 'none'}, expected ${mode}`);
    }
    return report.results.map((c) => c.durationMs);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** The checkpoint row: replaying the setup's steps against restoring their checkpoint, whole cases, in this process. */
async function checkpointBench(machine: string, runs: number): Promise<void> {
  const store = await mkdtemp(join(tmpdir(), 'fl-bench-cp-store-'));
  try {
    console.log(`a case reaching "generation 2 booted" on ${machine} (TCG${runs > 1 ? `, median of ${runs}` : ''}): replaying its steps vs restoring the checkpoint`);
    const replay = await fleetlabCases(machine, 'replayed', ['--no-checkpoints', '--repeat-each', String(runs)]);
    await fleetlabCases(machine, 'saved', ['--keep-snapshots', store]);
    const restore = await fleetlabCases(machine, 'restored', ['--keep-snapshots', store, '--repeat-each', String(runs)]);
    const a = median(replay);
    const b = median(restore);
    console.log(`  replayed ${(a / 1000).toFixed(1)} s (${replay.map((x) => (x / 1000).toFixed(1)).join(', ')})   restored ${(b / 1000).toFixed(1)} s (${restore.map((x) => (x / 1000).toFixed(1)).join(', ')})`);
    console.log(`checkpoint ratio: ${(a / b).toFixed(1)} (goal >= 10)`);
  } finally {
    await rm(store, { recursive: true, force: true });
  }
}

/**
 * The reboot row: m.reboot() (the reboot command until the shell answers again) through the testbed's shutdown agent
 * (/etc/fleetlab/linuxrc) against busybox init's own way, which pauses a second after SIGTERM to every process and
 * another before the reboot: the agent is killed (SIGKILL; SIGTERM would be a reboot request) and reaped first, so
 * busybox's reboot signals init. Alternated on one machine; the agent is back after every boot.
 */
async function rebootBench(names: string[], runs: number): Promise<void> {
  console.log(`reboot (TCG, median of ${runs}, alternated), busybox init's way vs the shutdown agent's: command to the guest's reset, and to the shell answering again`);
  for (const name of names) {
    const p = await loadProfile(name);
    if (p.boot.kind === 'testbed-disk') await ensureBootDisk(await ensureTestbed(testbedRecipes[p.boot.image]!), p.boot.layout, p.boot.append);
    const { m } = await fleetlabBoot(p);
    /** [ms to the reset (QEMU counts a boot), ms to the shell] of one m.reboot(). */
    const timed = async (): Promise<[number, number]> => {
      const before = m.boots;
      const t0 = performance.now();
      let reset = 0;
      const watch = setInterval(() => {
        if (!reset && m.boots !== before) reset = performance.now() - t0;
      }, 5);
      try {
        await m.reboot();
      } finally {
        clearInterval(watch);
      }
      return [reset || NaN, performance.now() - t0];
    };
    try {
      const init: Array<[number, number]> = [];
      const agent: Array<[number, number]> = [];
      for (let i = 0; i < runs; i++) {
        await m.succeed('kill -KILL $(pidof linuxrc); while pidof linuxrc >/dev/null; do sleep 0.1; done', { timeout: 30_000 });
        init.push(await timed());
        if (!(await m.succeed('pidof linuxrc || true')).trim()) throw new Error(`${name}: no shutdown agent after a boot`);
        agent.push(await timed());
      }
      const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
      const row = (xs: Array<[number, number]>, k: 0 | 1) => median(xs.map((x) => x[k]));
      const list = (xs: Array<[number, number]>, k: 0 | 1) => xs.map((x) => (x[k] / 1000).toFixed(1)).join(', ');
      for (const [k, what] of [[0, 'to reset'], [1, 'to shell']] as const) {
        const a = row(init, k);
        const b = row(agent, k);
        console.log(`  ${name.padEnd(14)} ${what}: busybox init ${s(a)} (${list(init, k)})   agent ${s(b)} (${list(agent, k)})   ${(a / b).toFixed(2)}x, ${s(a - b)} less`);
      }
    } finally {
      await m.stop();
    }
  }
}
