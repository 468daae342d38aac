// Bring your own image: --image boots the user's disk through a qcow2 overlay (the file itself is never written),
// --kernel/--initrd/--append boot the user's kernel; both on a profile's hardware, through the real CLI.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBootDisk } from '../../machines/testbed/boot-disk.ts';
import { ensureTestbed } from '../../machines/testbed/build.ts';
import { resolvePackage, unpackDeb } from '../../machines/testbed/debian-packages.ts';
import { testbedRecipes } from '../../machines/testbed/index.ts';

const root = join(import.meta.dirname, '../..');
const fixture = join(root, 'harness/runner/fixtures/byo.ts');
const fleetlab = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd: root, reject: false, timeout: 300_000, env: { CI: '1', NO_COLOR: '1', ...env } });
const sha256 = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
type Result = { results: Array<{ scenario: string; status: string; attempts: Array<{ steps: Array<{ name: string; status: string }> }> }> };

describe('bring your own image', () => {
  let dir: string;
  let image: string;
  let imageHash: string;
  let diskRun: Awaited<ReturnType<typeof fleetlab>>;
  let kernelRun: Awaited<ReturnType<typeof fleetlab>>;
  let requestRun: Awaited<ReturnType<typeof fleetlab>>;
  let isoRun: Awaited<ReturnType<typeof fleetlab>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-byo-'));
    // The user's image: the BIOS testbed disk, converted to qcow2 so the format is found by probing, not assumed.
    const testbed = await ensureTestbed(testbedRecipes.x86_64!);
    const disk = await ensureBootDisk(testbed, 'grub-bios', 'console=ttyS0 panic=-1');
    image = join(dir, 'my-nixos.qcow2');
    await execa('qemu-img', ['convert', '-O', 'qcow2', disk.path, image]);
    imageHash = await sha256(image);
    // An installer-like ISO: grub-mkrescue (BIOS El Torito) with the testbed kernel and a marker entry.
    const grub = join(dir, 'grub');
    await unpackDeb(await resolvePackage('grub-pc-bin', 'amd64'), grub);
    const stage = join(dir, 'iso');
    await mkdir(join(stage, 'boot/grub'), { recursive: true });
    await copyFile(testbed.kernelImage, join(stage, 'boot/vmlinuz'));
    await copyFile(testbed.initrd, join(stage, 'boot/initrd'));
    await writeFile(
      join(stage, 'boot/grub/grub.cfg'),
      'serial --unit=0 --speed=115200\nterminal_output serial console\nset timeout=0\nmenuentry "installer" {\n  linux /boot/vmlinuz console=ttyS0 panic=-1 fleetlab.entry=iso\n  initrd /boot/initrd\n}\n',
    );
    const iso = join(dir, 'installer.iso');
    await execa('grub-mkrescue', ['-d', join(grub, 'usr/lib/grub/i386-pc'), '-o', iso, stage]);
    [diskRun, kernelRun, isoRun] = await Promise.all([
      fleetlab(['run', fixture, '--grep', '^own image \\[', '--image', image, '--output', join(dir, 'disk')]),
      fleetlab(['run', fixture, '--grep', '^own image \\[', '--kernel', testbed.kernel, '--initrd', testbed.initrd, '--append', 'console=ttyS0 panic=-1 byo.marker=42', '--output', join(dir, 'kernel')]),
      fleetlab(['run', fixture, '--grep', '^own image \\[', '--image', iso, '--output', join(dir, 'iso')]),
    ]);
    requestRun = await fleetlab(['run', fixture, '--tag', 'request', '--output', join(dir, 'request')], { FLEETLAB_TEST_IMAGE: image });
  }, 600_000);

  const report = async (sub: string) => JSON.parse(await readFile(join(dir, sub, 'report.json'), 'utf8')) as Result;

  it('--image boots the disk through its bootloader and the guest can write to it', async () => {
    expect(diskRun.exitCode, String(diskRun.stdout) + String(diskRun.stderr)).toBe(0);
    const steps = (await report('disk')).results[0]!.attempts[0]!.steps.map((s) => `${s.status} ${s.name}`);
    expect(steps).toContain('passed booted the image through its own GRUB');
    expect(steps).toContain('passed writes to the disk land in the overlay');
  });

  it('the image file itself is never written', async () => {
    expect(await sha256(image)).toBe(imageHash);
  });

  it('--kernel/--initrd/--append boot the given kernel on the profile', async () => {
    expect(kernelRun.exitCode, String(kernelRun.stdout) + String(kernelRun.stderr)).toBe(0);
    const steps = (await report('kernel')).results[0]!.attempts[0]!.steps.map((s) => `${s.status} ${s.name}`);
    expect(steps).toContain('passed booted the given kernel with the given command line');
  });

  it('an .iso boots from a read-only CD-ROM', async () => {
    expect(isoRun.exitCode, String(isoRun.stdout) + String(isoRun.stderr)).toBe(0);
    const steps = (await report('iso')).results[0]!.attempts[0]!.steps.map((s) => `${s.status} ${s.name}`);
    expect(steps).toContain('passed booted the ISO from the CD-ROM through its GRUB');
  });

  it('a scenario can name the image in its machine request', async () => {
    expect(requestRun.exitCode, String(requestRun.stdout) + String(requestRun.stderr)).toBe(0);
    expect((await report('request')).results.map((r) => `${r.scenario}: ${r.status}`)).toEqual(['own image from the scenario: passed']);
  });

  it('bad input names the option: a missing file, --append on a disk boot, --initrd without --kernel', async () => {
    const missing = await fleetlab(['run', fixture, '--image', '/nonexistent/nixos.img']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('--image "/nonexistent/nixos.img": no such file');
    const append = await fleetlab(['run', fixture, '--grep', '^own image \\[', '--image', image, '--append', 'quiet']);
    expect(append.exitCode).toBe(2);
    expect(append.stderr).toMatch(/--append cannot change the command line of a disk boot/);
    const initrd = await fleetlab(['run', fixture, '--grep', '^own image \\[', '--initrd', image]);
    expect(initrd.exitCode).toBe(2);
    expect(initrd.stderr).toMatch(/initrd and dtb need a kernel/);
  });
});
