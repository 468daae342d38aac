// Closures copied the way a real NixOS machine takes them: scenarios/nix-copy.ts through the real CLI (nix copy over
// SSH into the testbed with Nix, a reboot into the copied generation, a rollback, a store path from a host store), and
// copyClosure's and the scenario's bad input.
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetlabError } from '../errors/fleetlab-error.ts';
import { applyBootOverride } from '../qemu/boot-override.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import { QemuMachine } from '../qemu/qemu-machine.ts';
import { processesMatching } from '../testing/processes.ts';
import { runScenario } from './run-scenario.ts';

const root = join(import.meta.dirname, '../..');

describe('nix copy into a machine with Nix', () => {
  let run: Awaited<ReturnType<typeof runScenario>>;
  beforeAll(async () => {
    run = await runScenario('scenarios/nix-copy.ts', [], 900_000);
  }, 960_000);

  it('passes: only the new toplevel travels, the machine verifies it, boots it, rolls back, takes a host store path', () => {
    expect(run.cases.map((c) => [c.name, c.failure ?? 'passed']), run.output.slice(-4000)).toEqual([['update over nix copy [x86_64-bios]', 'passed']]);
    expect(run.exitCode).toBe(0);
    expect(run.cases[0]!.properties['nix-copy.paths']).toBe('1');
    expect(Number(run.cases[0]!.properties['nix-copy.ms'])).toBeGreaterThan(0);
  });
});

const m = await QemuMachine.fromProfile('x86_64-direct', { name: 'nixless', logDir: join(tmpdir(), `fleetlab-test-nixcopy-${process.pid}`) });

describe('copyClosure and the testbed choice: bad input', () => {
  afterAll(async () => {
    await m.stop();
  });

  it('a path that is no store path: a configuration error before the machine is asked anything', async () => {
    await expect(m.nixos.copyClosure('/tmp/system')).rejects.toMatchObject({ kind: 'configuration', message: expect.stringMatching(/"\/tmp\/system" is no Nix store path/) });
    await expect(m.nixos.copyClosure('/nix/store/00000000000000000000000000000000-x', { via: 'shell' })).rejects.toThrow(/a store path is copied from a Nix store with nix copy/);
  });

  it('nix copy to a machine without Nix names the testbed that has it', async () => {
    await m.start();
    await m.waitForShell({ timeout: 120_000 });
    await expect(m.nixos.copyClosure('/nix/store/00000000000000000000000000000000-x')).rejects.toMatchObject({ kind: 'configuration', message: expect.stringMatching(/nixless has no nix-store \(the testbed with Nix is testbed: 'x86_64-nix'\)/) });
  }, 180_000);

  for (const [file, message] of [
    ['testbed-wrong-arch.ts', /testbed: "aarch64" is not built for profile x86_64-bios's architecture \(it boots x86_64\)/],
    ['testbed-unknown.ts', /testbed: "x86_64-nixos" is no testbed recipe \(have: .*x86_64-nix/],
  ] as const) {
    it(`${file}: exit 2 before anything boots`, async () => {
      const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', `harness/nixos/fixtures/${file}`, '--output', join(tmpdir(), `fleetlab-nixcopy-bad-${process.pid}`)], { cwd: root, reject: false, timeout: 60_000, env: { CI: '1', NO_COLOR: '1' } });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(`${r.stdout}\n${r.stderr}`).toMatch(message);
    }, 90_000);
  }
});

describe('a machine that dies during nix copy', () => {
  it('ends the copy at once with the machine\'s death, and leaves no nix or ssh behind', async () => {
    const profile = applyBootOverride(await loadProfile('x86_64-bios'), { testbed: 'x86_64-nix' }, root, 'the test');
    const v = new QemuMachine(profile, { name: 'nixvictim', hostLink: true, logDir: join(tmpdir(), `fleetlab-test-nixdeath-${process.pid}`) });
    try {
      await v.start();
      await v.waitForShell({ timeout: 180_000 });
      // A generation with 64 MB of /etc: its copy takes seconds under TCG, long enough to kill QEMU in the middle.
      const big = await v.nixos.testbedGeneration({ version: '26.05.9-big', etc: { blob: 'x'.repeat(64 * 1024 * 1024) } });
      const copying = v.nixos.copyClosure(big, { timeout: 300_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Kill it once nix copy has started sending.
      const t = Date.now();
      while (!processesMatching('nix copy').some(([, c]) => c.includes(big.path)) && Date.now() - t < 60_000) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
      const killedAt = performance.now();
      process.kill(v.pid!, 'SIGKILL');
      const err = (await copying) as FleetlabError;
      expect(err, 'the copy must fail, not succeed').toBeInstanceOf(FleetlabError);
      expect(performance.now() - killedAt).toBeLessThan(5000);
      expect(err.kind).toBe('infrastructure');
      expect(err.message).toMatch(/^Machine nixvictim died while fleetlab waited for nix copy of \/nix\/store\/\S+-nixos-system-testbed-26\.05\.9-big to nixvictim/);
      // nix copy and the ssh it started were in one process group, stopped with it.
      await new Promise((r) => setTimeout(r, 500));
      expect(processesMatching(big.path), 'nix copy').toEqual([]);
      expect(processesMatching('fleetlab-nix-copy-nixvictim-'), 'its ssh (known_hosts in its arguments)').toEqual([]);
    } finally {
      await v.stop();
    }
  }, 300_000);
});
