// Boot disks for the testbed, laid out the way NixOS lays out its boot partition (GRUB, systemd-boot, extlinux,
// Raspberry Pi firmware partition), so firmware and bootloader run for real and update/rollback work has menus to drive.
// Built without loop mounts or root: partition images (mkfs.fat + mtools, mke2fs -d) copied into a disk
// partitioned with sfdisk; cached under a key of everything that goes into them.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { buildOnce, viaIndex } from '../../harness/cache/cached-build.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { runTool } from '../../harness/qemu/host-packages.ts';
import { bootLayouts } from '../../harness/qemu/profile.ts';
import { aptListsStamp, resolvePackage, unpackDeb, type DebPackage } from './debian-packages.ts';
import { testbedRecipes } from './index.ts';
import type { BootDisk, BootEntry, TestbedImage } from '../../harness/qemu/testbed-source.ts';
import type { BootLayout } from '../../harness/qemu/profile.ts';

export type { BootLayout } from '../../harness/qemu/profile.ts';

export type { BootDisk, BootEntry } from '../../harness/qemu/testbed-source.ts';

const FAT_SERIAL = '2d2e0f1a';
/** The FAT volume id as GRUB's search --fs-uuid spells it. */
const FAT_UUID = `${FAT_SERIAL.slice(0, 4)}-${FAT_SERIAL.slice(4)}`.toUpperCase();
const MiB = 1024 * 1024;
/** Who needs a host tool, for its "not installed" message. */
const BUILDING = 'building a boot disk';

/** Builds (or finds in the cache) the boot disk of `layout` for a testbed image; `append` goes on every entry's command line. */
export async function ensureBootDisk(image: TestbedImage, layout: BootLayout, append: string, opts: { log?: (line: string) => void } = {}): Promise<BootDisk> {
  if (!(layout in LAYOUT_BUILDERS)) throw new ConfigurationError(`boot layout "${layout}" is unknown; have: ${bootLayouts.join(', ')}`);
  const arch = testbedRecipes[image.recipe]!.debArch === 'arm64' ? 'arm64' : 'amd64';
  const builder = await readFile(fileURLToPath(import.meta.url));
  const local = createHash('sha256').update(`${image.key}\0${layout}\0${append}\0`).update(builder).digest('hex');
  // The index spares resolving the bootloader packages through apt on every machine start.
  return viaIndex(
    cacheDir('images', `disk-${image.recipe}-${layout}.index.json`),
    `${local}|${await aptListsStamp()}`,
    (disk) => existsSync(disk.path),
    async () => {
      const pkgs = await bootloaderPackages(layout, arch);
      const h = createHash('sha256').update(`${image.key}\0${layout}\0${append}\0`);
      for (const p of pkgs) h.update(`${p.name}=${p.version}:${p.arch}\n`);
      const key = h.update(builder).digest('hex').slice(0, 16);
      const dir = cacheDir('images', `disk-${image.recipe}-${layout}-${key}`);
      return buildOnce(dir, false, async (out, work) => {
        opts.log?.(`building ${layout} boot disk for testbed ${image.recipe} into ${dir}`);
        const bl = join(work, 'bootloader');
        for (const p of pkgs) await unpackDeb(p, bl);
        const entries = await LAYOUT_BUILDERS[layout]({ image, append, work, bootloader: bl, disk: join(out, 'disk.img'), arch });
        opts.log?.(`boot disk ready: ${join(dir, 'disk.img')}`);
        return { path: join(dir, 'disk.img'), layout, key, entries };
      });
    },
  );
}

async function bootloaderPackages(layout: BootLayout, arch: 'amd64' | 'arm64'): Promise<DebPackage[]> {
  switch (layout) {
    case 'grub-bios':
      return [await resolvePackage('grub-pc-bin', 'amd64')];
    case 'grub-efi-ia32':
      return [await resolvePackage('grub-efi-ia32-bin', 'amd64')];
    case 'systemd-boot':
      return [await resolvePackage('systemd-boot-efi', arch)];
    default:
      return [];
  }
}

interface LayoutInput {
  image: TestbedImage;
  append: string;
  work: string;
  /** Where the bootloader packages are unpacked. */
  bootloader: string;
  /** The disk image to write. */
  disk: string;
  arch: 'amd64' | 'arm64';
}

const LAYOUT_BUILDERS: Record<BootLayout, (i: LayoutInput) => Promise<BootEntry[]>> = {
  /** MBR, GRUB i386-pc in the MBR gap, FAT /boot with grub/grub.cfg ("NixOS - Default") and kernels/. */
  'grub-bios': async (i) => {
    const grubDir = join(i.bootloader, 'usr/lib/grub/i386-pc');
    const { files, entries } = grubFiles(i, 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n');
    const boot = join(i.work, 'boot.fat');
    await fatImage(boot, 64, 'NIXOS_BOOT', files);
    const core = join(i.work, 'core.img');
    await grubImage(grubDir, 'i386-pc', core, i.work, ['biosdisk', 'part_msdos', 'fat', 'normal', 'linux', 'search', 'search_fs_uuid', 'configfile', 'echo', 'test', 'serial', 'terminal']);
    const coreSize = (await stat(core)).size;
    if (coreSize > 2047 * 512) throw new InfrastructureError(`GRUB core.img is ${coreSize} bytes: too big for the 1 MiB gap before the first partition`);
    await assembleDisk(i.disk, 'dos', [{ file: boot, type: 'c', bootable: true }]);
    // boot.img goes into the MBR's code area (440 bytes, keeping the partition table); it loads core.img from
    // sector 1, whose first sector (diskboot) loads the rest: what grub-install does, without a block device.
    const bootImg = await readFile(join(grubDir, 'boot.img'));
    await writeAt(i.disk, 0, bootImg.subarray(0, 440));
    await writeAt(i.disk, 512, await readFile(core));
    return entries;
  },

  /** GPT, ESP with GRUB i386-efi as removable EFI/BOOT/BOOTIA32.EFI, grub/grub.cfg and kernels/. */
  'grub-efi-ia32': async (i) => {
    const grubDir = join(i.bootloader, 'usr/lib/grub/i386-efi');
    const { files, entries } = grubFiles(i, '');
    const efi = join(i.work, 'BOOTIA32.EFI');
    await grubImage(grubDir, 'i386-efi', efi, i.work, ['part_gpt', 'part_msdos', 'fat', 'normal', 'linux', 'search', 'search_fs_uuid', 'configfile', 'echo', 'test', 'efi_gop']);
    files.push(['EFI/BOOT/BOOTIA32.EFI', efi]);
    const esp = join(i.work, 'esp.fat');
    await fatImage(esp, 64, 'ESP', files);
    await assembleDisk(i.disk, 'gpt', [{ file: esp, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', name: 'ESP' }]);
    return entries;
  },

  /** GPT, ESP with systemd-boot as EFI/BOOT/BOOT{X64,AA64}.EFI, loader/entries/nixos-generation-1.conf, EFI/nixos/. */
  'systemd-boot': async (i) => {
    const efiArch = i.arch === 'arm64' ? 'aa64' : 'x64';
    const sdboot = join(i.bootloader, `usr/lib/systemd/boot/efi/systemd-boot${efiArch}.efi`);
    if (!existsSync(sdboot)) throw new InfrastructureError(`systemd-boot-efi:${i.arch} has no ${basename(sdboot)}`);
    const n = nixNames(i.image);
    const kernelName = `EFI/nixos/${n.hash}-linux-${i.image.kernelVersion}-${i.arch === 'arm64' ? 'Image' : 'bzImage'}.efi`;
    const initrdName = `EFI/nixos/${n.hash}-initrd-linux-${i.image.kernelVersion}-initrd.efi`;
    const entry = { id: 'nixos-generation-1', title: `NixOS Generation 1` };
    const conf = [
      'title NixOS',
      `version Generation 1 ${n.label}, Linux Kernel ${i.image.kernelVersion}, Built on ${n.date}`,
      `linux /${kernelName}`,
      `initrd /${initrdName}`,
      `options ${oneLine(`init=${n.system}/init ${i.append} fleetlab.entry=${entry.id}`)}`,
      'machine-id 2d2e0f1a9c8b4d6e8f7a6b5c4d3e2f10',
      'sort-key nixos',
      '',
    ].join('\n');
    const files: FatFile[] = [
      [`EFI/BOOT/BOOT${efiArch.toUpperCase()}.EFI`, sdboot],
      [`EFI/systemd/systemd-boot${efiArch}.efi`, sdboot],
      [kernelName, i.image.kernelImage],
      [initrdName, i.image.initrd],
      ['loader/loader.conf', Buffer.from('timeout 0\ndefault nixos-generation-1.conf\nconsole-mode keep\neditor no\n')],
      ['loader/entries/nixos-generation-1.conf', Buffer.from(conf)],
    ];
    const esp = join(i.work, 'esp.fat');
    await fatImage(esp, i.arch === 'arm64' ? 96 : 64, 'ESP', files);
    await assembleDisk(i.disk, 'gpt', [{ file: esp, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', name: 'ESP' }]);
    return [entry];
  },

  /** MBR, FAT FIRMWARE and a bootable ext4 NIXOS_SD root with /boot/extlinux/extlinux.conf (LABEL nixos-default): NixOS's sd-image layout. */
  extlinux: async (i) => {
    const n = nixNames(i.image);
    const kernelName = `${n.hash}-linux-${i.image.kernelVersion}-Image`;
    const initrdName = `${n.hash}-initrd-linux-${i.image.kernelVersion}-initrd`;
    const entries = [
      { id: 'nixos-default', title: 'NixOS - Default' },
      { id: 'nixos-1', title: `NixOS - Configuration 1 (${n.date} - ${n.label})` },
    ];
    const lines = [
      '# Generated file, all changes will be lost on nixos-rebuild!',
      '',
      '# Change this to e.g. nixos-42 to temporarily boot to an older configuration.',
      'DEFAULT nixos-default',
      '',
      'MENU TITLE ------------------------------------------------------------',
      // Tenths of a second; 0 would wait for a choice forever.
      'TIMEOUT 1',
    ];
    for (const e of entries) {
      lines.push('', `LABEL ${e.id}`, `  MENU LABEL ${e.title}`, `  LINUX ../nixos/${kernelName}`, `  INITRD ../nixos/${initrdName}`, `  APPEND ${oneLine(`init=${n.system}/init ${i.append} fleetlab.entry=${e.id}`)}`);
    }
    const root = join(i.work, 'root');
    await mkdir(join(root, 'boot/extlinux'), { recursive: true });
    await mkdir(join(root, 'boot/nixos'), { recursive: true });
    await writeFile(join(root, 'boot/extlinux/extlinux.conf'), lines.join('\n') + '\n');
    await copyFile(i.image.kernelImage, join(root, 'boot/nixos', kernelName));
    await copyFile(i.image.initrd, join(root, 'boot/nixos', initrdName));
    await nixosRootMarkers(root, n);
    const fw = join(i.work, 'firmware.fat');
    await fatImage(fw, 8, 'FIRMWARE', []);
    const rootImg = join(i.work, 'root.ext4');
    await ext4Image(rootImg, 112, 'NIXOS_SD', root);
    await assembleDisk(i.disk, 'dos', [
      { file: fw, type: 'c' },
      { file: rootImg, type: '83', bootable: true },
    ]);
    return entries;
  },

  /** MBR SD card, FAT FIRMWARE with config.txt, cmdline.txt, kernel8.img, initrd and device tree; ext4 NIXOS_SD root. */
  'raspi-firmware': async (i) => {
    const dtb = Object.entries(i.image.deviceTrees).find(([name]) => name.startsWith('bcm2837-rpi-3-b'));
    if (!dtb) throw new ConfigurationError(`testbed ${i.image.recipe} has no bcm2837-rpi-3-b.dtb; the raspi-firmware layout needs one (deviceTrees in its recipe).`);
    const entry = { id: 'raspi-cmdline', title: 'cmdline.txt' };
    const files: FatFile[] = [
      ['config.txt', Buffer.from(`# Read by the VideoCore firmware (on QEMU: by fleetlab, which plays its part).\n[pi3]\nkernel=kernel8.img\ndevice_tree=${dtb[0]}\n[all]\narm_64bit=1\nenable_uart=1\ninitramfs initrd.img followkernel\n`)],
      ['cmdline.txt', Buffer.from(oneLine(`${i.append} fleetlab.entry=${entry.id}`) + '\n')],
      ['kernel8.img', i.image.kernelImage],
      ['initrd.img', i.image.initrd],
      [dtb[0], dtb[1]],
    ];
    const fw = join(i.work, 'firmware.fat');
    await fatImage(fw, 80, 'FIRMWARE', files);
    const root = join(i.work, 'root');
    await nixosRootMarkers(root, nixNames(i.image));
    const rootImg = join(i.work, 'root.ext4');
    await ext4Image(rootImg, 40, 'NIXOS_SD', root);
    // QEMU's SD card model wants a power-of-two size: 1 MiB gap + 80 + 40 + slack = 128 MiB.
    await assembleDisk(i.disk, 'dos', [{ file: fw, type: 'c' }, { file: rootImg, type: '83', bootable: true }], 128);
    return [entry];
  },
};

/** NixOS-looking names: a store hash and system path derived from the testbed's key, a date and a label. */
function nixNames(image: TestbedImage) {
  const hash = createHash('sha256').update(image.key).digest('hex').replace(/[^0-9a-d]/g, '').padEnd(32, '0').slice(0, 32);
  const label = `testbed-${image.recipe}`;
  return { hash, label, date: '2026-01-01', system: `/nix/store/${hash}-nixos-system-${label}` };
}

/** GRUB's files on the boot partition, NixOS style: grub/grub.cfg with "NixOS - Default" and a submenu of configurations. */
function grubFiles(i: LayoutInput, terminal: string): { files: FatFile[]; entries: BootEntry[] } {
  const n = nixNames(i.image);
  const kernel = `kernels/${n.hash}-linux-${i.image.kernelVersion}-bzImage`;
  const initrd = `kernels/${n.hash}-initrd-linux-${i.image.kernelVersion}-initrd`;
  const def = { id: 'nixos-default', title: 'NixOS - Default' };
  const gen = { id: 'nixos-generation-1', title: `NixOS - Configuration 1 (${n.date} - ${n.label})` };
  const body = (e: BootEntry) => `  linux ($drive1)/${kernel} ${oneLine(`init=${n.system}/init ${i.append} fleetlab.entry=${e.id}`)}\n  initrd ($drive1)/${initrd}\n`;
  const cfg = [
    '# Automatically generated.  DO NOT EDIT THIS FILE!',
    terminal,
    'set timeout=0',
    'set default=0',
    `search --set=drive1 --fs-uuid ${FAT_UUID}`,
    `menuentry "${def.title}" --class nixos --unrestricted {`,
    body(def) + '}',
    'submenu "NixOS - All configurations" --class submenu {',
    `menuentry "${gen.title}" --class nixos {`,
    body(gen) + '}',
    '}',
    '',
  ].join('\n');
  return {
    files: [
      ['grub/grub.cfg', Buffer.from(cfg)],
      [kernel, i.image.kernelImage],
      [initrd, i.image.initrd],
    ],
    entries: [def, gen],
  };
}

/** A kernel command line on one line with single spaces. */
function oneLine(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

/** A GRUB image for `format` with the modules built in and a first config that finds the boot partition. */
async function grubImage(grubDir: string, format: string, out: string, work: string, modules: string[]): Promise<void> {
  const early = join(work, `early-${format}.cfg`);
  await writeFile(early, `search --no-floppy --fs-uuid --set=root ${FAT_UUID}\nset prefix=($root)/grub\nconfigfile $prefix/grub.cfg\n`);
  await runTool('grub-mkimage', ['-d', grubDir, '-O', format, '-o', out, '-p', '/grub', '-c', early, ...modules], { purpose: BUILDING });
}

type FatFile = [dest: string, src: string | Buffer];

/** A FAT32 image of `sizeMiB` holding `files` (mkfs.fat + mtools: no mount needed). */
async function fatImage(path: string, sizeMiB: number, label: string, files: FatFile[]): Promise<void> {
  await runTool('mkfs.fat', ['-F', '32', '-n', label, '-i', FAT_SERIAL, '-C', path, String(sizeMiB * 1024)], { purpose: BUILDING });
  const dirs = new Set<string>();
  for (const [dest] of files) {
    const parts = dest.split('/').slice(0, -1);
    for (let k = 1; k <= parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  for (const d of [...dirs].sort()) await runTool('mmd', ['-i', path, `::${d}`], { purpose: BUILDING });
  for (const [dest, src] of files) {
    let from = src as string;
    if (Buffer.isBuffer(src)) {
      from = `${path}.tmp`;
      await writeFile(from, src);
    }
    await runTool('mcopy', ['-i', path, from, `::${dest}`], { purpose: BUILDING });
  }
  await rm(`${path}.tmp`, { force: true });
}

/** An ext4 image of `sizeMiB` populated from `dir` (mke2fs -d). */
async function ext4Image(path: string, sizeMiB: number, label: string, dir: string): Promise<void> {
  await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-d', dir, '-E', 'root_owner=0:0', path, `${sizeMiB}M`], { purpose: BUILDING });
}

/** The bits of a NixOS root that tools look for: /etc/NIXOS and a system profile link. */
async function nixosRootMarkers(root: string, n: ReturnType<typeof nixNames>): Promise<void> {
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'nix/var/nix/profiles'), { recursive: true });
  await writeFile(join(root, 'etc/NIXOS'), '');
  await writeFile(join(root, 'nix/var/nix/profiles/system-1-link.target'), `${n.system}\n`);
}

/** A disk image with `parts` one after the other from 1 MiB on, partitioned by sfdisk. */
async function assembleDisk(disk: string, label: 'dos' | 'gpt', parts: Array<{ file: string; type: string; bootable?: boolean; name?: string }>, totalMiB?: number): Promise<void> {
  const sizes = await Promise.all(parts.map(async (p) => (await stat(p.file)).size));
  const need = 1 + sizes.reduce((a, s) => a + Math.ceil(s / MiB), 0) + (label === 'gpt' ? 1 : 0);
  const total = totalMiB ?? need;
  if (total < need) throw new InfrastructureError(`disk ${disk}: partitions need ${need} MiB, the layout allows ${total} MiB`);
  const fh = await open(disk, 'w');
  await fh.truncate(total * MiB);
  await fh.close();
  const lines = [`label: ${label}`, 'unit: sectors', ''];
  let start = 2048;
  parts.forEach((p, k) => {
    const sectors = Math.ceil(sizes[k]! / MiB) * 2048;
    lines.push([`start=${start}`, `size=${sectors}`, `type=${p.type}`, p.bootable ? 'bootable' : '', p.name ? `name="${p.name}"` : ''].filter(Boolean).join(', '));
    start += sectors;
  });
  await runTool('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', disk], { purpose: BUILDING, input: lines.join('\n') + '\n' });
  let at = MiB;
  for (const [k, p] of parts.entries()) {
    await runTool('dd', [`if=${p.file}`, `of=${disk}`, 'bs=1M', `seek=${at / MiB}`, 'conv=notrunc,sparse', 'status=none'], { purpose: BUILDING });
    at += Math.ceil(sizes[k]! / MiB) * MiB;
  }
}

async function writeAt(file: string, position: number, data: Buffer): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(data, 0, data.length, position);
  } finally {
    await fh.close();
  }
}
