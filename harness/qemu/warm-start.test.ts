// Warm starts through the real CLI and real QEMU: the first case of a shape boots and saves a snapshot, later cases
// restore it (proved from JUnit and report.json, not assumed); restored machines get their own hostname, machine-id,
// MACs, addresses and the host's clock; a restore starved of CPU is waited for; a corrupted snapshot means a cold boot and a report line, not a failure; the key changes with
// the profile and the image; nothing is left behind without --keep-snapshots; clones share the snapshot's RAM pages.
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../machines/testbed/register.ts';
import { extendProfile } from './profile.ts';
import { loadProfile, validateProfile } from './profile-loader.ts';
import { QemuMachine } from './qemu-machine.ts';
import { SnapshotStore } from './warm-start.ts';
import { setTimeoutScale } from '../time/deadline.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const work = await mkdtemp(join(tmpdir(), 'fleetlab-warm-test-'));
afterAll(() => rm(work, { recursive: true, force: true }));

interface Report {
  results: Array<{ scenario: string; status: string; attempts: Array<{ output: string[]; machines: Array<{ name: string; facts?: { start?: { mode: string; ms: number; reason?: string; restoreFailed?: string } } }> }> }>;
}

async function run(file: string, args: string[], out: string): Promise<{ exitCode: number; report: Report; junit: string; stdout: string; pid: number }> {
  const sub = execa(process.execPath, [join(ROOT, 'harness/cli/main.ts'), 'run', file, '--output', out, ...args], { cwd: ROOT, reject: false, timeout: 600_000, env: { CI: 'true' } });
  const pid = sub.pid!;
  const r = await sub;
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report;
  return { exitCode: r.exitCode ?? -1, report, junit: await readFile(join(out, 'junit.xml'), 'utf8'), stdout: r.stdout + r.stderr, pid };
}

/** Snapshot stores in the temp dir that process `pid` made (their owner file names it); other test files run too. */
const snapshotDirsOf = (pid: number) =>
  readdirSync(tmpdir()).filter((d) => d.startsWith('fleetlab-snapshots-') && (() => {
    try {
      return readFileSync(join(tmpdir(), d, '.fleetlab-owner'), 'utf8').split(' ')[0] === String(pid);
    } catch {
      return false;
    }
  })());

describe('warm starts', () => {
  it('three scenarios on one x86_64-uefi machine each: the first boots and saves, the second and third restore in a fifth of its time', async () => {
    const r = await run('harness/qemu/fixtures/warm-three.ts', ['--warm'], join(work, 'three'));
    expect(r.exitCode, r.stdout).toBe(0);
    const starts = r.report.results.map((c) => c.attempts.at(-1)!.machines[0]!.facts!.start!);
    expect(r.report.results.map((c) => c.scenario)).toEqual(['warm 1', 'warm 2', 'warm 3']);
    expect(starts.map((s) => s.mode)).toEqual(['cold', 'warm', 'warm']);
    expect(starts[0]!.reason).toMatch(/first of its shape/);
    for (const s of starts.slice(1)) expect(s.ms).toBeLessThanOrEqual(starts[0]!.ms / 5);
    // JUnit says the same, per case.
    expect([...r.junit.matchAll(/name="machine.start" value="(\w+)"/g)].map((m) => m[1])).toEqual(['cold', 'warm', 'warm']);
    // The run's snapshots are gone with it.
    expect(snapshotDirsOf(r.pid)).toEqual([]);
  }, 700_000);

  it('machines restored from one snapshot in one scenario: own hostname, own machine-id, the host clock, a working shell', async () => {
    const p = await loadProfile('x86_64-direct');
    const store = await SnapshotStore.open();
    const names = ['first', 'second', 'third'];
    const ms = names.map((name) => new QemuMachine(p, { name, logDir: join(work, 'identity') }));
    try {
      const starts = [];
      for (const m of ms) starts.push(await m.startWarm(store, { timeout: 300_000 }));
      expect(starts.map((s) => s.mode)).toEqual(['cold', 'warm', 'warm']);
      const seen = await Promise.all(ms.map(async (m) => (await m.succeed('hostname; cat /etc/machine-id; date -u +%s')).trim().split('\n')));
      expect(seen.map((s) => s[0])).toEqual(names);
      const ids = seen.map((s) => s[1]);
      expect(ids.every((id) => /^[0-9a-f]{32}$/.test(id!)), ids.join(' ')).toBe(true);
      expect(new Set(ids).size).toBe(3);
      const host = Math.floor(Date.now() / 1000);
      for (const s of seen) expect(Math.abs(Number(s[2]) - host)).toBeLessThan(10);
      // A restore is not a boot: the kernel's boot id is the snapshot's boot's; boots counts this machine's start.
      expect(ms[1]!.boots).toBe(1);
    } finally {
      await Promise.all(ms.map((m) => m.stop()));
      await store.close();
    }
    expect(existsSync(store.dir)).toBe(false);
  }, 400_000);

  it('clones of one snapshot map its RAM copy-on-write: they share its pages (PSS well below RSS) and not their writes', async () => {
    const p = await loadProfile('x86_64-direct');
    const store = await SnapshotStore.open();
    const ms = ['maker', 'clone1', 'clone2'].map((name) => new QemuMachine(p, { name, logDir: join(work, 'shared-ram') }));
    const smaps = (m: QemuMachine) => Object.fromEntries([...readFileSync(`/proc/${m.pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)].map((x) => [x[1]!, Number(x[2]) / 1024]));
    try {
      const starts = [];
      for (const m of ms) starts.push(await m.startWarm(store, { timeout: 300_000 }));
      expect(starts.map((s) => s.mode)).toEqual(['cold', 'warm', 'warm']);
      // The snapshot: device state in the stream, the RAM beside it as a sparse file of the guest's size.
      const snap = (await store.find(starts[0]!.snapshot!))!;
      expect(snap.ram).toBeTruthy();
      const [state, ram] = [await stat(snap.state), await stat(snap.ram!)];
      expect(state.size).toBeLessThan(8 << 20);
      expect(ram.size).toBe(p.qemu.memoryMiB << 20);
      expect(ram.blocks * 512).toBeLessThan(ram.size);
      const [c1, c2] = [smaps(ms[1]!), smaps(ms[2]!)];
      for (const c of [c1, c2]) {
        // A restored node used to hold ~200 MiB, all its own (issue #28); now the snapshot's pages are shared.
        expect(c.Shared_Clean, JSON.stringify(c)).toBeGreaterThan(16);
        expect(c.Pss, JSON.stringify(c)).toBeLessThan(c.Rss! * 0.8);
        expect(c.Pss, JSON.stringify(c)).toBeLessThan(96);
      }
      // What one clone writes is its own: its private pages grow, the other's do not, and the other does not see it.
      await ms[1]!.succeed('dd if=/dev/urandom of=/tmp/mine bs=1M count=32 2>/dev/null; sync');
      const [a1, a2] = [smaps(ms[1]!), smaps(ms[2]!)];
      expect(a1.Private_Dirty! - c1.Private_Dirty!).toBeGreaterThan(30);
      expect(Math.abs(a2.Private_Dirty! - c2.Private_Dirty!)).toBeLessThan(8);
      expect((await ms[2]!.execute('test -e /tmp/mine')).exitCode).toBe(1);
      expect((await ms[0]!.execute('test -e /tmp/mine')).exitCode).toBe(1);
    } finally {
      await Promise.all(ms.map((m) => m.stop()));
      await store.close();
    }
  }, 400_000);

  it('a restored guest starved of CPU past its 60 s for the shell is waited for, not booted cold: it had no CPU, so the host is busy, not the restore broken', async () => {
    const p = await loadProfile('x86_64-direct');
    const store = await SnapshotStore.open();
    const [maker, starved] = ['maker', 'starved'].map((name) => new QemuMachine(p, { name, logDir: join(work, 'starved') }));
    try {
      expect((await maker!.startWarm(store, { timeout: 300_000 })).mode).toBe('cold');
      // The moment the restored guest's shell is waited for, its QEMU stops (SIGSTOP: no CPU at all, as a guest on a
      // host saturated by a fleet gets next to none) for 25 s: two of the shell's windows, 60 s scaled to 12 s here.
      const wait = starved!.waitForShell.bind(starved);
      let stopped = false;
      starved!.waitForShell = async (o) => {
        if (!stopped && starved!.pid !== undefined) {
          stopped = true;
          const pid = starved!.pid;
          process.kill(pid, 'SIGSTOP');
          setTimeout(() => process.kill(pid, 'SIGCONT'), 25_000);
        }
        return wait(o);
      };
      setTimeoutScale(0.2);
      const start = await starved!.startWarm(store, { timeout: 600_000 }).finally(() => setTimeoutScale(1));
      expect(stopped).toBe(true);
      expect(start.mode, JSON.stringify(start)).toBe('warm');
      expect(start.ms).toBeGreaterThan(24_000);
      const log = await readFile(starved!.log.path, 'utf8');
      expect(log).toMatch(/no shell [\d.]+ s after the restore, but its QEMU had only [\d.]+ s of CPU .*the host is busy, not the restore broken; waiting on/);
      expect(log).not.toMatch(/booting cold/);
      expect((await starved!.succeed('hostname')).trim()).toBe('starved');
    } finally {
      setTimeoutScale(1);
      await Promise.all([maker, starved].map((m) => m!.stop()));
      await store.close();
    }
  }, 400_000);

  it('machines on a network: restored ones take their own MACs, addresses and SSH, and reach each other', async () => {
    const r = await run('harness/qemu/fixtures/warm-net.ts', [], join(work, 'net'));
    expect(r.exitCode, r.stdout).toBe(0);
    const machines = r.report.results[0]!.attempts[0]!.machines;
    expect(machines.map((m) => [m.name, m.facts!.start!.mode])).toEqual([['a', 'cold'], ['b', 'warm'], ['c', 'warm']]);
  }, 400_000);

  it('a corrupted snapshot: the machine boots cold, the report says why, and the case passes', async () => {
    const keep = join(work, 'kept');
    const first = await run('harness/qemu/fixtures/warm-three.ts', ['--warm', '--keep-snapshots', keep, '--grep', 'warm 1'], join(work, 'keep1'));
    expect(first.exitCode, first.stdout).toBe(0);
    const keys = readdirSync(keep);
    expect(keys).toHaveLength(1);
    // Kept for the next run: it restores at once.
    const again = await run('harness/qemu/fixtures/warm-three.ts', ['--warm', '--keep-snapshots', keep, '--grep', 'warm 2'], join(work, 'keep2'));
    expect(again.report.results[0]!.attempts[0]!.machines[0]!.facts!.start!.mode).toBe('warm');
    // Now break it: the migration stream cut short.
    await truncate(join(keep, keys[0]!, 'state'), 4096);
    const r = await run('harness/qemu/fixtures/warm-three.ts', ['--warm', '--keep-snapshots', keep, '--grep', 'warm 3'], join(work, 'keep3'));
    expect(r.exitCode, r.stdout).toBe(0);
    const att = r.report.results[0]!.attempts[0]!;
    const start = att.machines[0]!.facts!.start!;
    expect(start.mode).toBe('cold');
    expect(start.restoreFailed).toBeTruthy();
    expect(att.output.join('\n')).toMatch(/infrastructure: m: restoring its snapshot failed, booted cold instead/);
    expect(r.junit).toMatch(/name="machine.start.restore-failed"/);
    expect(r.stdout).toMatch(/restoring its snapshot failed, booted cold instead/);
  }, 900_000);

  it('a discarded snapshot is hidden at once but its files stay until the run ends (machines may be starting from them); the key snapshots anew beside it', async () => {
    const dir = join(work, 'discard-store');
    const store = await SnapshotStore.open(dir);
    const meta = { profile: 'p', madeBy: 'test', bootLog: '/dev/null', bootMs: 1, createdAt: new Date().toISOString(), parts: {} };
    const snap = await store.write('k1', meta, async (d) => {
      await writeFile(join(d, 'state'), 'x');
      await writeFile(join(d, 'ram'), 'y');
      return { disks: 0, efiVars: false, ram: true, macs: [], boots: 1 };
    });
    expect(snap.ram).toBe(join(dir, 'k1', 'ram'));
    await store.discard('k1');
    expect(await store.find('k1')).toBeUndefined();
    expect(existsSync(snap.ram!)).toBe(true);
    // Another process keeping snapshots in the same directory sees the mark too.
    expect(await (await SnapshotStore.open(dir)).find('k1')).toBeUndefined();
    // The key's next snapshot is a new generation beside the dropped one, found here and by another process.
    const again = await store.write('k1', meta, async (d) => {
      await writeFile(join(d, 'state'), 'z');
      return { disks: 0, efiVars: false, ram: false, macs: [], boots: 1 };
    });
    expect(again.dir).toBe(join(dir, 'k1~1'));
    expect((await store.find('k1'))?.dir).toBe(join(dir, 'k1~1'));
    expect((await (await SnapshotStore.open(dir)).find('k1'))?.dir).toBe(join(dir, 'k1~1'));
    expect(existsSync(snap.ram!)).toBe(true);
    // A machine that failed on the old one drops nothing more: the new generation stands.
    await store.discard('k1', snap);
    expect((await store.find('k1'))?.dir).toBe(join(dir, 'k1~1'));
    await store.close();
    expect(existsSync(join(dir, 'k1'))).toBe(false);
    expect(existsSync(join(dir, 'k1~1', 'state'))).toBe(true);
  });

  it('the key covers the profile and the image: a change makes a new snapshot, the same shape the same one', async () => {
    const store = await SnapshotStore.open();
    try {
      const base = await loadProfile('x86_64-direct');
      const key = async (p: typeof base, name = 'k') => {
        const plan = await new QemuMachine(p, { name, logDir: join(work, 'keys') }).prepareWarm(store);
        if (plan.kind === 'build') plan.done(undefined);
        expect(plan.kind, JSON.stringify(plan)).not.toBe('cold');
        return (plan as { key: string }).key;
      };
      const k1 = await key(base);
      await store.discard(k1);
      // Another machine name is the same shape (the name is set inside the guest after a restore).
      const k2 = await key(base, 'other');
      await store.discard(k2);
      expect(k2).toBe(k1);
      const k3 = await key(validateProfile(extendProfile(base, { name: 'bigger', qemu: { memoryMiB: base.qemu.memoryMiB + 64 } }), 'test'));
      await store.discard(k3);
      expect(k3).not.toBe(k1);
      // A disk image of the user's: rewritten, it is a new image.
      const img = join(work, 'disk.qcow2');
      await execa('qemu-img', ['create', '-q', '-f', 'qcow2', img, '64M']);
      const disk = validateProfile(extendProfile(await loadProfile('x86_64-bios'), { name: 'own-disk', boot: { kind: 'disk', image: img } }), 'test');
      const d1 = await key(disk);
      await store.discard(d1);
      await copyFile(img, `${img}.new`);
      await rm(img);
      await copyFile(`${img}.new`, img);
      await utimes(img, new Date(), new Date(Date.now() + 5000));
      const d2 = await key(disk);
      await store.discard(d2);
      expect(d2).not.toBe(d1);
    } finally {
      await store.close();
    }
  }, 300_000);
});
