// scenarios/update-rollback.ts on a virtual lab board, as on a VM: generations through the board's shell, closures
// copied over its SSH endpoint (its serial line is the slow channel), a rollback chosen in U-Boot's extlinux menu on
// the serial line, and a generation that does not boot at all rescued through that menu. The board's boots are
// counted from the kernel banners on its line (reboots and the resets it makes by itself).
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'harness/cli/main.ts');

describe('update and rollback on a lab board', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-board-nixos-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('scenarios/update-rollback.ts passes on tag:virtual: U-Boot menu rollback and rescue, copyClosure over SSH', async () => {
    const out = join(dir, 'out');
    const r = await execa(process.execPath, [cli, 'run', 'scenarios/update-rollback.ts', '--lab', 'lab/example-virtual.ts', '--lab-db', join(dir, 'lab.sqlite'), '--machine', 'tag:virtual', '--output', out], {
      cwd: root,
      reject: false,
      timeout: 900_000,
      env: { CI: 'true', NO_COLOR: '1' },
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const attempt = report.results[0].attempts[0];
    expect(attempt.properties).toMatchObject({ 'nixos.bootloader': 'extlinux', 'rollback.path': 'magic-rollback', 'rollback.no-init.path': 'menu-rescue' });
    const names = (steps: Array<{ name: string; status: string; steps: unknown[] }>): string[] => steps.flatMap((s) => [`${s.status} ${s.name}`, ...names(s.steps as typeof steps)]);
    expect(names(attempt.steps)).toContain('passed generation 2 chosen in the real boot menu');
    const m = attempt.machines[0];
    expect(m.facts).toMatchObject({ kind: 'board', board: expect.stringMatching(/^vboard-[12]$/), arch: 'aarch64' });
    expect(m.facts.accel).toBeUndefined();
    // Every generation went over SSH, none through the serial line's shell channel.
    const log = await readFile(m.logPath, 'utf8');
    expect(log.match(/nixos: copied \d+ store path\(s\) of \S+ over SSH/g)?.length ?? 0).toBeGreaterThanOrEqual(4);
    expect(log).not.toMatch(/through the shell channel/);
  }, 960_000);
});
