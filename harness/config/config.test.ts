// fleetlab.config.ts through the CLI: its defaults and a project's reach the run (report.json's options and inputs),
// a command-line option overrides them, the gate takes its policy from it, and a bad key, value or project is a
// configuration error naming the file and key before anything runs. The cases boot nothing (start: 'manual').
import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const fixture = join(root, 'harness/history/fixtures/gate.ts');
const fleetlab = (args: string[], cwd: string, env: Record<string, string> = {}) => execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd, reject: false, env: { NO_COLOR: '1', CI: '1', FLEETLAB_HISTORY: '', ...env } });
const CONFIG = `import { defineConfig } from 'fleetlab';

export default defineConfig({
  paths: [${JSON.stringify(fixture)}],
  workers: 1,
  retries: 1,
  history: 'history.sqlite',
  machinesDirs: ['profiles'],
  inputs: { build: 'base', site: 'lab-a' },
  gate: { failOn: ['still-failing'] },
  projects: {
    nightly: { repeatEach: 2, inputs: { build: 'nightly-1' }, reporter: ['console', 'json'] },
    pr: { grep: '^steady ' },
  },
});
`;

describe('fleetlab.config.ts', () => {
  it("gives run its defaults and a project's on top; the command line overrides both", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-config-'));
    await writeFile(join(dir, 'fleetlab.config.ts'), CONFIG);
    const r = await fleetlab(['run', '--project', 'nightly', '-o', 'out'], dir);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, 'out/report.json'), 'utf8')) as { run: { options: Record<string, unknown>; inputs: Record<string, string> }; results: unknown[] };
    expect(report.run.options).toMatchObject({ config: join(dir, 'fleetlab.config.ts'), project: 'nightly', workers: 1, retries: 1, repeatEach: 2, reporter: ['console', 'json'], history: 'history.sqlite', paths: [fixture] });
    expect(report.run.inputs).toEqual({ build: 'nightly-1', site: 'lab-a' });
    expect(report.results).toHaveLength(4);
    // The command line wins: --retries 0, --input build=x, a path of its own.
    const o = await fleetlab(['run', fixture, '--project', 'pr', '--retries', '0', '--input', 'build=x', '-o', 'out2'], dir);
    expect(o.exitCode, o.stdout + o.stderr).toBe(0);
    const report2 = JSON.parse(await readFile(join(dir, 'out2/report.json'), 'utf8')) as { run: { options: Record<string, unknown>; inputs: Record<string, string> }; results: Array<{ scenario: string }> };
    expect(report2.run.options).toMatchObject({ project: 'pr', retries: 0, workers: 1, grep: '^steady ' });
    expect(report2.run.inputs).toEqual({ build: 'x', site: 'lab-a' });
    expect(report2.results.map((c) => c.scenario)).toEqual(['steady']);
    // list takes the same selection, and finds the profiles of the config's machinesDirs.
    const list = await fleetlab(['list', '--project', 'pr'], dir);
    expect(list.stdout.trim().split('\n')).toEqual([expect.stringMatching(/::steady\[x86_64-direct\]$/)]);
    await mkdir(join(dir, 'profiles'));
    await writeFile(join(dir, 'profiles/tiny.ts'), "import base from 'fleetlab/machines/x86_64-direct';\nimport { extendProfile } from 'fleetlab';\nexport default extendProfile(base, { name: 'tiny', description: 'a profile of the project', qemu: { memoryMiB: 200 } });\n");
    const tiny = await fleetlab(['list', '--project', 'pr', '--machine', 'tiny'], dir);
    expect(tiny.stdout.trim(), tiny.stderr).toMatch(/::steady\[tiny\]$/);
  });

  it("the gate's policy comes from the config: a new failure does not fail a gate that fails on still-failing only", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-config-gate-'));
    await writeFile(join(dir, 'fleetlab.config.ts'), CONFIG);
    expect((await fleetlab(['run'], dir)).exitCode).toBe(0);
    expect((await fleetlab(['run'], dir, { FLEETLAB_FIXTURE_FAIL: '1' })).exitCode).toBe(1);
    const gate = await fleetlab(['gate'], dir);
    expect(gate.exitCode, gate.stdout + gate.stderr).toBe(0);
    expect(gate.stdout).toMatch(/NEW {12}wobbly/);
    // The command line's policy over the config's.
    expect((await fleetlab(['gate', '--fail-on', 'new'], dir)).exitCode).toBe(1);
  });

  it('a bad key, a bad value or an unknown project is a configuration error naming the file and key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-config-bad-'));
    const file = join(dir, 'fleetlab.config.ts');
    await writeFile(file, `export default { workers: 0, projects: { nightly: { retrys: 2 } } };\n`);
    const bad = await fleetlab(['run'], dir);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain(`fleetlab config ${file}: workers: `);
    expect(bad.stderr).toContain('projects.nightly: unknown key retrys');
    await writeFile(file, `export default { projects: { nightly: { workers: 1 } } };\n`);
    const project = await fleetlab(['list', '--project', 'weekly'], dir);
    expect(project.exitCode).toBe(2);
    expect(project.stderr).toContain(`--project weekly: ${file} has the projects nightly`);
    const missing = await fleetlab(['run', '--config', 'nope.ts'], dir);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('--config nope.ts: no such file');
    // Commands that take no config do not read it.
    await writeFile(file, 'export default { nonsense: true };\n');
    expect((await fleetlab(['images', 'path', 'nosuch', 'kernel'], dir)).stderr).not.toContain('fleetlab config');
  });
});
