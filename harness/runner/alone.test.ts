// A fleet takes the host alone: on 2 workers, a case of more VMs than a case starts at once (FLEETLAB_START_SLOTS)
// waits for the case beside it to end, and no case starts beside it; small cases still run two at a time. Its VMs
// are placed: each QEMU on one host CPU, round robin, under SCHED_BATCH. Through the real CLI (start: 'manual': only
// the fleet's first two VMs are powered on, and read from /proc).
import { execa } from 'execa';
import { mkdtemp, readFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('a fleet runs alone', () => {
  it('no case runs beside a fleet of more machines than start at once; small cases share the workers', async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-alone-'));
    const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/runner/fixtures/alone.ts', '--workers', '2', '--output', out, '--history', 'none'], { cwd: root, reject: false, timeout: 120_000, env: { CI: '1', NO_COLOR: '1', FLEETLAB_START_SLOTS: '4' } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: Array<{ scenario: string; attempts: Array<{ startedAt: string; durationMs: number; output: string[] }> }> };
    const span = (name: string) => {
      const a = report.results.find((x) => x.scenario === name)!.attempts[0]!;
      const from = Date.parse(a.startedAt);
      return { from, to: from + a.durationMs, output: a.output };
    };
    const [before, fleet, after, last] = ['small before', 'fleet of 6', 'small after', 'small last'].map(span);
    // No case's time overlaps the fleet's.
    for (const x of [before!, after!, last!]) expect(x.to <= fleet!.from || x.from >= fleet!.to, JSON.stringify({ x, fleet })).toBe(true);
    // Two of the small cases ran side by side.
    const small = [before!, after!, last!];
    expect(small.some((x, i) => small.some((y, j) => i < j && x.from < y.to && y.from < x.to))).toBe(true);
    expect(fleet!.output[0]).toBe('ran alone: 6 machines, more than the 4 a case starts at once (FLEETLAB_START_SLOTS)');
    expect(after!.output.join('\n')).not.toContain('ran alone');
    expect(fleet!.output.join('\n')).toMatch(/a fleet of 6 VMs: each on one host CPU \(round robin over \d+\), under the batch scheduler/);
    expect(after!.output.join('\n')).not.toContain('a fleet of');
    // Every thread of n0's QEMU on CPU 0, of n1's on CPU 1 (0 on a one-core host); all SCHED_BATCH (3).
    const junit = await readFile(join(out, 'junit.xml'), 'utf8');
    const prop = (k: string) => new RegExp(`<property name="${k}" value="([^"]*)"`).exec(junit)?.[1];
    expect(prop('n0.placement')).toBe('cpus 0 policy 3');
    expect(prop('n1.placement')).toBe(`cpus ${1 % cpus().length} policy 3`);
  }, 150_000);
});
