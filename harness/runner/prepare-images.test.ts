// Images are built before a run's cases start, with a line per step, on a terminal (tmux) and without one; a case's
// start is then its machine starting. Each run here has a cache of its own with no images in it (the Debian packages
// and the kernel modules built from source are the real cache's, so nothing is downloaded or compiled twice).
import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir } from '../cache/cache-dir.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import type { PlannedCase } from './plan.ts';
import { imageTasks } from './prepare-images.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');

describe('what a run boots from the testbed', () => {
  it('is one task per image, with the boot disks its VMs boot (a board boots its own card), each once', async () => {
    const vm = async (profile: string) => ({ id: profile, file: 'f.ts', scenario: {} as PlannedCase['scenario'], variant: profile, profiles: { vm: await loadProfile(profile) } });
    const cases: PlannedCase[] = [...(await Promise.all(['x86_64-uefi', 'x86_64-bios', 'x86_64-direct', 't100ta', 'x86_64-uefi'].map(vm)))];
    // A board whose profile boots the aarch64 testbed's extlinux disk: the image (for its generations), no disk.
    cases.push({ ...(await vm('aarch64-uboot')), id: 'board', boards: { vm: ['vboard-1'] } });
    const tasks = imageTasks(cases);
    expect(tasks.map((t) => t.image).sort()).toEqual(['aarch64', 'x86_64']);
    const x86 = tasks.find((t) => t.image === 'x86_64')!;
    expect(x86.profiles.sort()).toEqual(['t100ta', 'x86_64-bios', 'x86_64-direct', 'x86_64-uefi']);
    expect(x86.disks.map((d) => d.layout).sort()).toEqual(['grub-bios', 'grub-efi-ia32', 'systemd-boot']);
    expect(tasks.find((t) => t.image === 'aarch64')).toEqual({ image: 'aarch64', profiles: ['aarch64-uboot'], disks: [] });
  });
});

describe('images built before the cases start', () => {
  let dir: string;
  const session = `fleetlab-images-${process.pid}`;
  const tmux = (...args: string[]) => execa('tmux', args, { reject: false, timeout: 10_000 });
  /**
   * A cache without images: the real one's Debian packages and kernel modules (the testbed's batman-adv, compiled
   * from the kernel's source once per kernel: minutes, and not an image), and nothing else.
   */
  const freshCache = async (name: string) => {
    const cache = join(dir, name);
    await mkdir(cache, { recursive: true });
    for (const kept of ['debs', 'modules']) {
      await mkdir(cacheDir(kept), { recursive: true });
      await symlink(cacheDir(kept), join(cache, kept));
    }
    return cache;
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-images-'));
  });
  afterAll(async () => {
    await tmux('kill-session', '-t', session);
    await rm(dir, { recursive: true, force: true });
  });

  it('without a terminal: plain lines, the missing image first, a line per step and its time, then the case, whose start takes under 30 s', async () => {
    const cache = await freshCache('plain');
    const out = join(dir, 'plain-out');
    const r = await execa(process.execPath, [cli, 'run', 'scenarios/smoke.ts', '--output', out], { cwd: root, reject: false, timeout: 600_000, env: { CI: '1', NO_COLOR: '1', FLEETLAB_CACHE: cache } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(lines[0]).toBe('images: building x86_64 (for x86_64-direct), 1 at a time; cached: none');
    // Every step of the build said, in order, before it says it is ready.
    const steps = [1, 2, 3, 4, 5, 6].map((step) => at(new RegExp(`^image x86_64: step ${step}/6: `)));
    expect(steps.every((i, k) => i > 0 && (k === 0 || i > steps[k - 1]!)), lines.slice(0, 16).join('\n')).toBe(true);
    expect(at(/^image x86_64: ready in /)).toBeGreaterThan(at(/^image x86_64: step 6\/6/));
    expect(at(/^images: 1 built in .*; the cases start now$/)).toBeLessThan(at(/^▶ scenarios\/smoke\.ts::smoke\[x86_64-direct\]/));
    // No escape sequences: a log file reads as it came.
    expect(r.stdout).not.toMatch(/\x1b\[/);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const start = report.results[0].attempts[0].steps.find((s: { name: string }) => s.name === 'start main');
    expect(start.durationMs).toBeLessThan(30_000);
  }, 600_000);

  it('on a terminal (tmux): the same lines on the screen before the case begins', async () => {
    const cache = await freshCache('tty');
    const done = join(dir, 'tty-done');
    const command = `cd ${root} && env -u CI -u GITHUB_ACTIONS NO_COLOR=1 FLEETLAB_CACHE=${cache} ${process.execPath} harness/cli/main.ts run scenarios/smoke.ts --output ${join(dir, 'tty-out')}; touch ${done}; sleep 60`;
    const started = await tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', command);
    expect(started.exitCode, started.stderr).toBe(0);
    const screens: string[] = [];
    const until = Date.now() + 480_000;
    let finished = false;
    while (Date.now() < until && !finished) {
      const cap = await tmux('capture-pane', '-p', '-t', session);
      if (cap.exitCode === 0) screens.push(cap.stdout);
      finished = (await execa('test', ['-e', done], { reject: false })).exitCode === 0;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(finished, 'the run ended within 8 min').toBe(true);
    // A screen during the build: the build's lines, and no case yet.
    const building = screens.find((s) => /image x86_64: step [2-6]\/6/.test(s) && !/smoke\[x86_64-direct\]/.test(s));
    expect(building, screens.join('\n=====\n')).toMatch(/^images: building x86_64 \(for x86_64-direct\), 1 at a time; cached: none$/m);
    const last = (await tmux('capture-pane', '-p', '-t', session)).stdout;
    expect(last).toMatch(/image x86_64: ready in [\s\S]*images: 1 built in [\s\S]*✓ passed scenarios\/smoke\.ts::smoke\[x86_64-direct\]/);
  }, 600_000);
});
