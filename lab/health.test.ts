// Health on a schedule: `fleetlab lab health` on the remote lab (lab/example-remote.ts; its stand-in host is this
// machine's sshd and ser2net) checks each board, prints a verdict each, and quarantines the board whose plug does not
// answer with the reason and its log; `lab status` shows each board's last check; a lab with healthMaxAgeHours hands
// a case only boards whose last check passed within the limit.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LabSession } from './lab-session.ts';
import { testbedCard } from './virtual/virtual-lab.ts';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'harness/cli/main.ts');

describe('lab health', () => {
  it('checks every board, prints a verdict each, quarantines the one whose plug does not answer; lab status shows the checks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-health-'));
    const env = { CI: 'true', NO_COLOR: '1', FLEETLAB_RLAB_DIR: join(dir, 'rlab'), FLEETLAB_RLAB_BREAK: 'rboard-2', FLEETLAB_RLAB_HEALTH_IMAGE: await testbedCard() };
    const db = join(dir, 'lab.sqlite');
    const r = await execa(process.execPath, [cli, 'lab', 'health', '--lab', 'lab/example-remote.ts', '--lab-db', db, '-o', join(dir, 'logs')], { cwd: root, reject: false, timeout: 400_000, env });
    expect(r.exitCode, r.stdout + r.stderr).toBe(3);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^rboard-1: healthy: power off, flashed and read back disk\.img \(\d+ bytes\), power on, serial alive, shell answers, aarch64 in [\d.]+ s; log \S+rboard-1\.log$/);
    expect(lines[1]).toMatch(/^rboard-2: quarantined: power: rboard-2: .*on lab host shelf1 \(\S+@127\.0\.0\.1:\d+\) exited 1: .*Connection refused; log \S+rboard-2\.log$/);
    expect(existsSync(/log (\S+)$/.exec(lines[0]!)![1]!)).toBe(true);

    const st = await execa(process.execPath, [cli, 'lab', 'status', '--lab', 'lab/example-remote.ts', '--lab-db', db, '--json'], { cwd: root, env });
    const boards = JSON.parse(st.stdout).boards as Array<{ board: string; state: string; reason?: string; health?: { ok: boolean; detail: string; log?: string } }>;
    const one = boards.find((b) => b.board === 'rboard-1')!;
    const two = boards.find((b) => b.board === 'rboard-2')!;
    expect(one).toMatchObject({ state: 'free', health: { ok: true } });
    expect(two).toMatchObject({ state: 'quarantined', health: { ok: false } });
    expect(two.reason).toMatch(/^health check failed: power: rboard-2: .*Connection refused; log \S+rboard-2\.log$/);
    const plain = await execa(process.execPath, [cli, 'lab', 'status', '--lab', 'lab/example-remote.ts', '--lab-db', db], { cwd: root, env });
    expect(plain.stdout).toMatch(/rboard-1 +free +\[remote, aarch64\] {2}health: passed \d+ s ago/);

    // With the health limit, a case gets rboard-1 (checked just now) and never rboard-2 (failed).
    const s = await LabSession.open('lab/fixtures/health-limit.ts', { db, provision: false });
    try {
      const got = await s.acquire(['rboard-1', 'rboard-2'], { role: 'main', logDir: join(dir, 'acq'), deadline: (await import('../harness/time/deadline.ts')).Deadline.after(5000, 'acquire'), signal: new AbortController().signal, onLost: () => undefined });
      expect('skip' in got ? got.skip : got.board.board).toBe('rboard-1');
      if (!('skip' in got)) await got.release();
    } finally {
      await s.close();
    }
  }, 420_000);

  it('with healthMaxAgeHours, a case whose boards were never checked is skipped saying to run lab health', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-health-'));
    const out = join(dir, 'out');
    const r = await execa(process.execPath, [cli, 'run', 'scenarios/smoke.ts', '--lab', 'lab/fixtures/health-limit.ts', '--lab-db', join(dir, 'lab.sqlite'), '--machine', 'tag:remote', '--output', out, '--history', 'none'], { cwd: root, reject: false, timeout: 120_000, env: { CI: 'true', NO_COLOR: '1', FLEETLAB_RLAB_DIR: join(dir, 'rlab') } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/no board of rboard-1, rboard-2 passed a health check in the last 1 h \(the lab's healthMaxAgeHours\): run fleetlab lab health --lab \S+health-limit\.ts/);
  }, 150_000);
});
