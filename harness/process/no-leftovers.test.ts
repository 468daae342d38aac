// Nothing a run starts outlives it: QEMU dies with its runner even when the runner is killed with SIGKILL.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pidAlive, printedPid, processesMatching } from '../testing/processes.ts';
import { sweepLeftovers } from './temp-dirs.ts';

/** Temp dirs whose owner file names `pid`. */
function dirsOwnedBy(pid: number): string[] {
  return readdirSync(tmpdir())
    .filter((n) => n.startsWith('fleetlab-'))
    .map((n) => join(tmpdir(), n))
    .filter((d) => {
      try {
        return readFileSync(join(d, '.fleetlab-owner'), 'utf8').startsWith(`${pid} `);
      } catch {
        return false;
      }
    });
}

const here = dirname(fileURLToPath(import.meta.url));

describe('process supervision', () => {
  it('a runner killed with SIGKILL mid-boot leaves no QEMU behind', async () => {
    const name = `orphan${process.pid}`;
    const runner = spawn(process.execPath, [join(here, 'fixtures/boot-and-wait.ts'), name], { stdio: ['ignore', 'pipe', 'inherit'] });
    // The runner prints QEMU's pid once QEMU runs, then waits for the guest.
    const qemuPid = await printedPid(runner, 'qemu-pid');
    expect(pidAlive(qemuPid)).toBe(true);
    expect(processesMatching(`fleetlab-${name}`).length).toBe(1);
    runner.kill('SIGKILL');
    const deadline = Date.now() + 10_000;
    while (pidAlive(qemuPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(pidAlive(qemuPid)).toBe(false);
    expect(processesMatching(`fleetlab-${name}`)).toEqual([]);
    // Its run directory (sockets) stayed behind; the next fleetlab process sweeps it, its owner being gone.
    const left = dirsOwnedBy(runner.pid!).filter((d) => !d.includes('fleetlab-logs-'));
    expect(left.length).toBeGreaterThan(0);
    const swept = sweepLeftovers();
    for (const d of left) {
      expect(swept).toContain(d);
      expect(existsSync(d)).toBe(false);
    }
  });
});
