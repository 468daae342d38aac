// scenarios/boot-loader-recovery.ts on a virtual lab board and on a U-Boot VM, one run: a generation whose init is
// missing fails in stage 1; a power cycle, U-Boot's autoboot interrupted on the serial line, commands at its prompt,
// the previous generation booted from its extlinux menu, the profile rolled back.
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'harness/cli/main.ts');

describe('recovery at the boot loader console', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-uboot-recovery-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('scenarios/boot-loader-recovery.ts passes on tag:virtual and on aarch64-uboot', async () => {
    const out = join(dir, 'out');
    const r = await execa(process.execPath, [cli, 'run', 'scenarios/boot-loader-recovery.ts', '--lab', 'lab/example-virtual.ts', '--lab-db', join(dir, 'lab.sqlite'), '--machine', 'tag:virtual', '--machine', 'aarch64-uboot', '--output', out, '--history', 'none'], {
      cwd: root,
      reject: false,
      timeout: 600_000,
      env: { CI: 'true', NO_COLOR: '1' },
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { results: Array<{ variant: string; status: string; attempts: Array<{ properties: Record<string, string>; machines: Array<{ logPath: string; facts: { kind: string } }> }> }> };
    expect(report.results.map((c) => [c.variant, c.status]).sort()).toEqual([['aarch64-uboot', 'passed'], ['tag:virtual', 'passed']]);
    for (const c of report.results) {
      const a = c.attempts[0]!;
      expect(a.properties['uboot.chosen']).toMatch(/^\d+: NixOS - Configuration 1 \(/);
      expect(a.properties['uboot.boot_targets']).toContain('virtio0');
      // The commands went to U-Boot's prompt on the serial line, and the menu was answered there.
      const log = await readFile(a.machines[0]!.logPath, 'utf8');
      expect(log).toMatch(/=> version; echo FLRC[0-9a-f]+=\$\?/);
      expect(log).toMatch(/Enter choice: \d/);
    }
    expect(report.results.find((c) => c.variant === 'tag:virtual')!.attempts[0]!.machines[0]!.facts.kind).toBe('board');
  }, 660_000);
});
