// Guests fleetlab did not build, as a user meets them: an image without the backdoor (a login prompt and nothing on
// hvc0), a console that prints prompt-like text slowly, a user profile importing fleetlab's own by package name with a
// dash serial-login shell, a kernel with its root on a disk (NixOS's build-vm shape), QEMU refusing its arguments,
// and 1 MB of binary on the serial console landing in the log byte for byte.
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeConsoleLog } from '../console/console-log.ts';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { loadProfile } from './profile-loader.ts';
import { QemuMachine } from './qemu-machine.ts';

const root = join(import.meta.dirname, '../..');
const logDir = join(tmpdir(), `fleetlab-test-foreign-${process.pid}`);
const fleetlab = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd: root, reject: false, timeout: 300_000, env: { CI: '1', NO_COLOR: '1', ...env } });
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('an image without the backdoor, on a console that prints slowly', () => {
  let m: QemuMachine;
  beforeAll(async () => {
    const direct = await loadProfile('x86_64-direct');
    m = new QemuMachine({ ...direct, name: 'no-backdoor', boot: { kind: 'testbed', image: 'x86_64', append: 'console=ttyS0 panic=-1 fleetlab.backdoor=0 fleetlab.slowbanner=1' } }, { name: 'nobackdoor', logDir });
    await m.start();
  }, 120_000);
  afterAll(async () => {
    await m?.stop();
  });

  it('waitForShell fails soon after the login prompt, naming the serial-login profile fix', async () => {
    const t0 = performance.now();
    const err = (await m.waitForShell({ timeout: 120_000 }).catch((e: unknown) => e)) as ConfigurationError;
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(performance.now() - t0).toBeLessThan(40_000);
    expect(err.message).toMatch(/^Machine nobackdoor shows a login prompt on its serial console serial0 \("nobackdoor login:"\), but no backdoor root shell greeted on hvc0 within 15 s after it/);
    expect(err.message).toContain("guest.shell is { kind: 'serial-login', console: 'serial0' }");
  }, 60_000);

  it('serial login waits for the real prompt while prompt-like text is still arriving', async () => {
    await m.login('root', 'fleetlab', { timeout: 60_000 });
    // Log out: getty starts again, behind a banner printed in pieces that end like prompts ("# ", "login:", "$", ">").
    await m.sendConsole('exit\n');
    await m.waitForConsoleText(/fleetlab testbed: slow banner/, { timeout: 20_000 });
    await m.login('root', 'fleetlab', { timeout: 60_000 });
    await m.sendConsole('echo "logged-in-as-$(id -u)"\n');
    await m.waitForConsoleText(/logged-in-as-0/, { timeout: 10_000 });
    // Nothing was typed into the banner: the user name follows the real prompt, not the fake one.
    const log = decodeConsoleLog(await readFile(m.log.path)).toString('latin1');
    const banner = log.slice(log.lastIndexOf('fleetlab testbed: slow banner'));
    const bannerText = banner.slice(0, banner.indexOf('Password: not yet'));
    expect(bannerText.length).toBeGreaterThan(50);
    expect(bannerText).not.toContain('root');
    expect(banner.slice(bannerText.length)).toMatch(/nobackdoor login: root/);
  }, 120_000);

  it('every byte on the serial console lands in the log: 1 MB of random bytes, by checksum', async () => {
    const tag = randomBytes(4).toString('hex');
    // Raw output (no \n -> \r\n) and no kernel messages in between; the guest prints the checksum after the bytes.
    await m.sendConsole(
      `dmesg -n 1; head -c 1048576 /dev/urandom > /tmp/blob; s=$(sha256sum /tmp/blob); stty raw; printf 'BEGIN-${tag}\\n'; cat /tmp/blob; printf 'END-${tag} %s\\n' "$s"; stty sane\n`,
    );
    const end = await m.waitForConsoleText(new RegExp(`END-${tag} ([0-9a-f]{64})`), { timeout: 120_000 });
    await new Promise((r) => setTimeout(r, 500));
    const bytes = decodeConsoleLog(await readFile(m.log.path));
    const from = bytes.lastIndexOf(`BEGIN-${tag}\n`) + `BEGIN-${tag}\n`.length;
    const to = bytes.lastIndexOf(`END-${tag} `);
    expect(to - from).toBe(1024 * 1024);
    expect(sha256(bytes.subarray(from, to))).toBe(end[1]);
    // Raw bytes, not UTF-8 with replacement characters: the log grew by about the blob, not twice it.
    expect((await readFile(m.log.path)).length).toBeLessThan(1.5 * 1024 * 1024 + 200_000);
  }, 180_000);
});

describe('a user profile that imports fleetlab by package name, on a dash guest with a serial-login shell', () => {
  it('runs the smoke scenario through the CLI', async () => {
    const repo = await mkdtemp(join(tmpdir(), 'fleetlab-userrepo-'));
    await mkdir(join(repo, 'node_modules'), { recursive: true });
    await symlink(root, join(repo, 'node_modules/fleetlab'));
    await mkdir(join(repo, 'machines'));
    await writeFile(
      join(repo, 'machines/debianish.ts'),
      `import base from 'fleetlab/machines/x86_64-direct';
import { extendProfile, profiles } from 'fleetlab';
if (profiles['x86_64-direct'] !== base) throw new Error('profiles and the machines/* export disagree');
export default extendProfile(base, {
  name: 'debianish',
  boot: { kind: 'testbed', image: 'x86_64-dash', append: 'console=ttyS0 panic=-1' },
  consoles: [{ name: 'serial0', device: 'serial' }],
  guest: { shell: { kind: 'serial-login', console: 'serial0' }, login: { user: 'root', password: 'fleetlab' } },
});
`,
    );
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-userrun-'));
    const run = await fleetlab(['run', 'scenarios/smoke.ts', '--machine', 'debianish', '--output', dir], { FLEETLAB_MACHINES: join(repo, 'machines') });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/passed scenarios\/smoke\.ts::smoke\[debianish\]/);
  }, 240_000);
});

describe('own kernel and root disk, and QEMU refusing its arguments', () => {
  it("--kernel/--initrd/--append root=LABEL=nixos --image rootfs.ext4 boots with its root on the disk (NixOS's build-vm shape)", async () => {
    // The README's command: the files come from `fleetlab images path`.
    const path = async (file: string) => (await fleetlab(['images', 'path', 'x86_64', file])).stdout.trim();
    const [kernel, initrd, rootfs] = [await path('kernel'), await path('initrd'), await path('rootfs')];
    expect(rootfs).toMatch(/rootfs\.ext4$/);
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-rootdisk-'));
    const run = await fleetlab(['run', 'harness/runner/fixtures/root-disk.ts', '--kernel', kernel, '--initrd', initrd, '--append', 'root=LABEL=nixos console=ttyS0 panic=-1', '--image', rootfs, '--output', dir]);
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8'));
    const steps = report.results[0].attempts[0].steps.map((s: { status: string; name: string }) => `${s.status} ${s.name}`);
    expect(steps).toEqual(['passed start main', 'passed / is the ext4 disk labelled nixos', 'passed a file written to the disk survives a reboot']);
  }, 240_000);

  it('QEMU rejecting its command line is a configuration error (exit 2) with QEMU\'s own words', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-badargs-'));
    await writeFile(
      join(dir, 'badargs.ts'),
      `import { extendProfile } from '${join(root, 'harness/qemu/profile.ts')}';
import base from '${join(root, 'machines/x86_64-direct.ts')}';
export default extendProfile(base, { name: 'badargs', qemu: { extraArgs: ['-device', 'no-such-device-model'] } });
`,
    );
    const t0 = performance.now();
    const run = await fleetlab(['run', 'scenarios/smoke.ts', '--machine', 'badargs', '--output', join(dir, 'out')], { FLEETLAB_MACHINES: dir });
    expect(run.exitCode, run.stdout + run.stderr).toBe(2);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(run.stdout).toMatch(/QEMU of machine main \(profile badargs\) exited while starting \(exit code 1\): it rejected its command line/);
    expect(run.stdout).toMatch(/qemu-system-x86_64: -device no-such-device-model: 'no-such-device-model' is not a valid device model name/);
    expect(run.stdout).not.toMatch(/QMP socket/);
  }, 60_000);
});
