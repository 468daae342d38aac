// Boot disks for the testbed, laid out the way NixOS lays out its boot partition (GRUB, systemd-boot, extlinux,
// Raspberry Pi firmware partition), so firmware and bootloader run for real and update/rollback work has menus to drive.
// Built without loop mounts or root: partition images (mkfs.fat + mtools, mke2fs -d) copied into a disk
// partitioned with sfdisk; cached under a key of everything that goes into them.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { basename, dirname, join } from 'node:path';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { buildOnce, viaIndex } from '../../harness/cache/cached-build.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { sourceDir, sourceFile } from '../../harness/package-files.ts';
import { registerClosure, REGISTRATION_VERSION } from '../../harness/nixos/nix-store.ts';
import { runTool } from '../../harness/qemu/host-packages.ts';
import { bootLayouts } from '../../harness/qemu/profile.ts';
import { aptListsStamp, resolvePackage, unpackDeb, type DebPackage } from './debian-packages.ts';
import { buildGeneration, kernelPaths } from './generations.ts';
import { testbedRecipes } from './index.ts';
import type { BootDisk, BootEntry, TestbedImage } from '../../harness/qemu/testbed-source.ts';
import type { BootLayout } from '../../harness/qemu/profile.ts';

export type { BootLayout } from '../../harness/qemu/profile.ts';

export type { BootDisk, BootEntry } from '../../harness/qemu/testbed-source.ts';

const here = sourceDir(import.meta.url);
/** The generation builder and the guest scripts every generation carries: part of what a disk's cache key covers. */
export const GENERATION_FILES = ['generations.ts', 'nixos/init', 'nixos/activate', 'nixos/switch-to-configuration', 'nixos/fleetlab-install-bootloader', 'nixos/fleetlab-boot-counting'].map((f) => join(here, f));
const FAT_SERIAL = '2d2e0f1a';
/** The FAT volume id as GRUB's search --fs-uuid spells it. */
const FAT_UUID = `${FAT_SERIAL.slice(0, 4)}-${FAT_SERIAL.slice(4)}`.toUpperCase();
const MiB = 1024 * 1024;
/** Who needs a host tool, for its "not installed" message. */
const BUILDING = 'building a boot disk';

/** Builds (or finds in the cache) the boot disk of `layout` for a testbed image; `append` goes on every entry's command line. */
export async function ensureBootDisk(image: TestbedImage, layout: BootLayout, append: string, opts: { log?: (line: string) => void; sdImage?: boolean } = {}): Promise<BootDisk> {
  const sd = !!opts.sdImage;
  if (sd && layout !== 'extlinux' && layout !== 'raspi-uboot') throw new ConfigurationError(`an SD image is built in NixOS's sd-image layout (extlinux, raspi-uboot), not in "${layout}"`);
  const kind = sd ? `sd-${layout}` : layout;
  if (!(layout in LAYOUT_BUILDERS)) throw new ConfigurationError(`boot layout "${layout}" is unknown; have: ${bootLayouts.join(', ')}`);
  const arch = testbedRecipes[image.recipe]!.debArch === 'arm64' ? 'arm64' : 'amd64';
  // The disk holds generation 1, so its builder and the guest scripts it carries are part of its key.
  const builder = Buffer.concat([...(await Promise.all([sourceFile(import.meta.url), ...GENERATION_FILES].map((f) => readFile(f)))), Buffer.from(`registration ${REGISTRATION_VERSION}`)]);
  const local = createHash('sha256').update(`${image.key}\0${kind}\0${append}\0`).update(builder).digest('hex');
  // The index spares resolving the bootloader packages through apt on every machine start.
  return viaIndex(
    cacheDir('images', `disk-${image.recipe}-${kind}.index.json`),
    `${local}|${await aptListsStamp()}`,
    (disk) => existsSync(disk.path),
    async () => {
      const pkgs = await bootloaderPackages(layout, arch);
      const h = createHash('sha256').update(`${image.key}\0${kind}\0${append}\0`);
      for (const p of pkgs) h.update(`${p.name}=${p.version}:${p.arch}\n`);
      const key = h.update(builder).digest('hex').slice(0, 16);
      const dir = cacheDir('images', `disk-${image.recipe}-${kind}-${key}`);
      return buildOnce(dir, false, async (out, work) => {
        opts.log?.(`building ${sd ? `${layout} SD image` : `${layout} boot disk`} for testbed ${image.recipe} into ${dir}`);
        const bl = join(work, 'bootloader');
        for (const p of pkgs) await unpackDeb(p, bl);
        const entries = await LAYOUT_BUILDERS[layout]({ image, append, work, bootloader: bl, disk: join(out, 'disk.img'), arch, sd });
        opts.log?.(`boot disk ready: ${join(dir, 'disk.img')}`);
        return { path: join(dir, 'disk.img'), layout, key, entries };
      });
    },
  );
}

export async function bootloaderPackages(layout: BootLayout, arch: 'amd64' | 'arm64'): Promise<DebPackage[]> {
  switch (layout) {
    case 'grub-bios':
      return [await resolvePackage('grub-pc-bin', 'amd64')];
    case 'grub-efi-ia32':
      return [await resolvePackage('grub-efi-ia32-bin', 'amd64')];
    case 'systemd-boot':
      return [await resolvePackage('systemd-boot-efi', arch)];
    case 'raspi-uboot':
      return [await resolvePackage('u-boot-rpi', 'arm64')];
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
  /**
   * An SD image as NixOS's sd-image builds it: the disk just as big as its partitions, and /nix-path-registration on
   * the root, which makes the first boot grow the root partition to the card (machines/testbed/rootfs/etc/fleetlab/first-boot).
   */
  sd?: boolean;
}

const LAYOUT_BUILDERS: Record<BootLayout, (i: LayoutInput) => Promise<BootEntry[]>> = {
  /** MBR, GRUB i386-pc in the MBR gap, FAT /boot with grub/grub.cfg ("NixOS - Default") and kernels/, ext4 root "nixos". */
  'grub-bios': async (i) => {
    const grubDir = join(i.bootloader, 'usr/lib/grub/i386-pc');
    const terminal = 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console';
    const root = await nixosRoot(i, 'nixos', { flavour: 'grub', boot_device: 'LABEL=NIXOS_BOOT', grub_terminal: terminal, timeout: '0' });
    const { files, entries } = grubFiles(i, root, terminal);
    const boot = join(i.work, 'boot.fat');
    await fatImage(boot, 64, 'NIXOS_BOOT', files);
    const core = join(i.work, 'core.img');
    await grubImage(grubDir, 'i386-pc', core, i.work, ['biosdisk', 'part_msdos', 'fat', 'normal', 'linux', 'search', 'search_fs_uuid', 'configfile', 'echo', 'test', 'serial', 'terminal', 'loadenv']);
    const coreSize = (await stat(core)).size;
    if (coreSize > 2047 * 512) throw new InfrastructureError(`GRUB core.img is ${coreSize} bytes: too big for the 1 MiB gap before the first partition`);
    await assembleDisk(i.disk, 'dos', [{ file: boot, type: 'c', bootable: true }, { file: root.image, type: '83' }]);
    // boot.img goes into the MBR's code area (440 bytes, keeping the partition table); it loads core.img from
    // sector 1, whose first sector (diskboot) loads the rest: what grub-install does, without a block device.
    const bootImg = await readFile(join(grubDir, 'boot.img'));
    await writeAt(i.disk, 0, bootImg.subarray(0, 440));
    await writeAt(i.disk, 512, await readFile(core));
    return entries;
  },

  /** GPT, ESP with GRUB i386-efi as removable EFI/BOOT/BOOTIA32.EFI, grub/grub.cfg and kernels/; ext4 root "nixos". */
  'grub-efi-ia32': async (i) => {
    const grubDir = join(i.bootloader, 'usr/lib/grub/i386-efi');
    const root = await nixosRoot(i, 'nixos', { flavour: 'grub', boot_device: 'LABEL=ESP', grub_terminal: '', timeout: '0' });
    const { files, entries } = grubFiles(i, root, '');
    const efi = join(i.work, 'BOOTIA32.EFI');
    await grubImage(grubDir, 'i386-efi', efi, i.work, ['part_gpt', 'part_msdos', 'fat', 'normal', 'linux', 'search', 'search_fs_uuid', 'configfile', 'echo', 'test', 'efi_gop', 'loadenv']);
    files.push(['EFI/BOOT/BOOTIA32.EFI', efi]);
    const esp = join(i.work, 'esp.fat');
    await fatImage(esp, 64, 'ESP', files);
    await assembleDisk(i.disk, 'gpt', [{ file: esp, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', name: 'ESP' }, { file: root.image, type: LINUX_FS_GPT, name: 'nixos' }]);
    return entries;
  },

  /** GPT, ESP with systemd-boot as EFI/BOOT/BOOT{X64,AA64}.EFI, loader/entries/nixos-generation-1.conf, EFI/nixos/; ext4 root "nixos". */
  'systemd-boot': async (i) => {
    const efiArch = i.arch === 'arm64' ? 'aa64' : 'x64';
    const sdboot = join(i.bootloader, `usr/lib/systemd/boot/efi/systemd-boot${efiArch}.efi`);
    if (!existsSync(sdboot)) throw new InfrastructureError(`systemd-boot-efi:${i.arch} has no ${basename(sdboot)}`);
    // fleetlab's boot counting on (fleetlab.guest.bootCounting): its configuration file, as the module writes it.
    const root = await nixosRoot(i, 'nixos', { flavour: 'systemd-boot', boot_device: 'LABEL=ESP', timeout: '0' }, (dir) => writeFile(join(dir, 'etc/fleetlab/boot-counting.conf'), `tries=${SYSTEMD_BOOT_TRIES}\n`));
    const g = root.gen1;
    const kernelName = `EFI/nixos/${storeName(g.kernel)}.efi`;
    const initrdName = `EFI/nixos/${storeName(g.initrd)}.efi`;
    const entry = { id: 'nixos-generation-1', title: `NixOS Generation 1` };
    const conf = [
      'title NixOS',
      `version Generation 1 ${g.version}, Linux Kernel ${i.image.kernelVersion}, Built on ${GEN1_DATE}`,
      `linux /${kernelName}`,
      `initrd /${initrdName}`,
      `options ${entryParams(root, entry.id)}`,
      'machine-id 2d2e0f1a9c8b4d6e8f7a6b5c4d3e2f10',
      'sort-key nixos',
      '',
    ].join('\n');
    const files: FatFile[] = [
      [`EFI/BOOT/BOOT${efiArch.toUpperCase()}.EFI`, sdboot],
      [`EFI/systemd/systemd-boot${efiArch}.efi`, sdboot],
      [kernelName, i.image.kernelImage],
      [initrdName, i.image.stage1],
      ['loader/loader.conf', Buffer.from('timeout 0\ndefault nixos-generation-1.conf\neditor 0\nconsole-mode keep\n')],
      ['loader/entries/nixos-generation-1.conf', Buffer.from(conf)],
    ];
    const esp = join(i.work, 'esp.fat');
    await fatImage(esp, i.arch === 'arm64' ? 96 : 64, 'ESP', files);
    await assembleDisk(i.disk, 'gpt', [{ file: esp, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', name: 'ESP' }, { file: root.image, type: LINUX_FS_GPT, name: 'nixos' }]);
    return [entry];
  },

  /** MBR, FAT FIRMWARE and a bootable ext4 NIXOS_SD root with /boot/extlinux/extlinux.conf (LABEL nixos-default): NixOS's sd-image layout, root on the disk. */
  extlinux: async (i) => {
    const root = await extlinuxRoot(i, false);
    const fw = join(i.work, 'firmware.fat');
    await fatImage(fw, 8, 'FIRMWARE', []);
    await assembleDisk(i.disk, 'dos', [
      { file: fw, type: 'c' },
      { file: root.image, type: '83', bootable: true },
    ]);
    return extlinuxEntries();
  },

  /**
   * The Pi booted as NixOS's sd-image does: the firmware (on QEMU fleetlab's stand-in) loads U-Boot, named by
   * config.txt (Debian's u-boot-rpi, its 64-bit Pi 3 build), which reads /boot/extlinux/extlinux.conf from the
   * bootable NIXOS_SD root and the device tree from FDTDIR. The menu and the rollback are U-Boot's.
   */
  'raspi-uboot': async (i) => {
    const uboot = join(i.bootloader, 'usr/lib/u-boot/rpi_3/u-boot.bin');
    if (!existsSync(uboot)) throw new InfrastructureError(`u-boot-rpi has no usr/lib/u-boot/rpi_3/u-boot.bin`);
    const root = await extlinuxRoot(i, true);
    const files: FatFile[] = [
      ['config.txt', Buffer.from('# Read by the VideoCore firmware (on QEMU: by fleetlab, which plays its part).\n[pi3]\nkernel=u-boot.bin\n[all]\narm_64bit=1\nenable_uart=1\n')],
      ['u-boot.bin', uboot],
    ];
    const fw = join(i.work, 'firmware.fat');
    await fatImage(fw, 64, 'FIRMWARE', files);
    await assembleDisk(i.disk, 'dos', [{ file: fw, type: 'c' }, { file: root.image, type: '83', bootable: true }], i.sd ? undefined : 256);
    return extlinuxEntries();
  },

  /** MBR SD card, FAT FIRMWARE with config.txt, cmdline.txt, kernel8.img, initrd and device tree; ext4 NIXOS_SD root with the system. */
  'raspi-firmware': async (i) => {
    const dtb = Object.entries(i.image.deviceTrees).find(([name]) => name.startsWith('bcm2837-rpi-3-b'));
    if (!dtb) throw new ConfigurationError(`testbed ${i.image.recipe} has no bcm2837-rpi-3-b.dtb; the raspi-firmware layout needs one (deviceTrees in its recipe).`);
    // The legacy firmware-only Pi boot (boot.loader.raspberryPi, removed from nixpkgs in #241534): the current generation's kernel, initrd and command
    // line on the FIRMWARE partition, mounted at /boot/firmware; the root on NIXOS_SD.
    const root = await nixosRoot(i, 'NIXOS_SD', { flavour: 'raspi', boot_device: 'LABEL=FIRMWARE', boot_mount: '/boot/firmware' });
    const entry = { id: 'nixos-generation-1', title: 'cmdline.txt' };
    const files: FatFile[] = [
      ['config.txt', Buffer.from(`# Read by the VideoCore firmware (on QEMU: by fleetlab, which plays its part).\n[pi3]\nkernel=kernel8.img\ndevice_tree=${dtb[0]}\n[all]\narm_64bit=1\nenable_uart=1\ninitramfs initrd.img followkernel\n`)],
      ['cmdline.txt', Buffer.from(entryParams(root, entry.id) + '\n')],
      ['kernel8.img', i.image.kernelImage],
      ['initrd.img', i.image.stage1],
      [dtb[0], dtb[1]],
    ];
    const fw = join(i.work, 'firmware.fat');
    await fatImage(fw, 80, 'FIRMWARE', files);
    // QEMU's SD card model wants a power-of-two size: 1 MiB gap + 80 + 160 + slack = 256 MiB.
    await assembleDisk(i.disk, 'dos', [{ file: fw, type: 'c' }, { file: root.image, type: '83', bootable: true }], 256);
    return [entry];
  },
};

/** The first generation every testbed disk holds: its spec, and the date its profile link carries. */
export const GEN1 = { version: '26.05.1-testbed' };
export const GEN1_DATE = '2026-01-01';
/** fleetlab's boot counting on testbed systemd-boot disks: a new generation's entry is installed with this many tries. */
export const SYSTEMD_BOOT_TRIES = 2;
/** GPT type of a Linux filesystem partition. */
const LINUX_FS_GPT = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

/** A store path's file as NixOS names its copy on a boot partition: /nix/store/H-linux-V/bzImage -> H-linux-V-bzImage. */
function storeName(storeFile: string): string {
  return `${basename(dirname(storeFile))}-${basename(storeFile)}`;
}

interface NixosRoot {
  /** The ext4 image of the root filesystem. */
  image: string;
  /** Generation 1: its toplevel, kernel and initrd store files, version and kernel parameters. */
  gen1: { toplevel: string; kernel: string; initrd: string; version: string; params: string; dtbs?: string };
  rootParam: string;
  append: string;
}

/**
 * The root filesystem of a NixOS-shaped testbed disk: the testbed's system (its initramfs tree, so stage 2 runs from
 * the disk), /nix/store with generation 1 (machines/testbed/generations.ts), the system profile
 * (/nix/var/nix/profiles/system -> system-1-link), /etc/NIXOS, and /etc/fleetlab/bootloader.conf telling the
 * guest's boot loader writer (fleetlab-install-bootloader) which loader it writes for and how.
 */
async function nixosRoot(i: LayoutInput, label: string, conf: Record<string, string>, extra?: (dir: string, r: NixosRoot) => Promise<void>): Promise<NixosRoot> {
  const dir = join(i.work, 'root');
  await mkdir(dir, { recursive: true });
  // Stage 2's system: the initramfs tree, or the larger tree of a recipe with root-only packages (Nix).
  await execa('cpio', ['--quiet', '-idm', '--no-absolute-filenames'], { cwd: dir, inputFile: i.image.stage2 ?? i.image.initrd });
  const g = await buildGeneration(i.image, i.arch, { version: GEN1.version }, dir);
  const k = kernelPaths(i.image, i.arch);
  const profiles = join(dir, 'nix/var/nix/profiles');
  await mkdir(profiles, { recursive: true });
  await symlink(g.path, join(profiles, 'system-1-link'));
  await symlink('system-1-link', join(profiles, 'system'));
  const stamp = new Date(`${GEN1_DATE}T00:00:00Z`);
  await execa('touch', ['-h', '-d', stamp.toISOString(), join(profiles, 'system-1-link')]);
  await writeFile(join(dir, 'etc/NIXOS'), '');
  // An SD image's store, registered at its first boot (NixOS: nix-store --load-db), which also grows the root.
  if (i.sd) await writeFile(join(dir, 'nix-path-registration'), g.closure.join('\n') + '\n');
  const rootParam = `root=LABEL=${label}`;
  const append = oneLine(i.append);
  const all: Record<string, string> = { boot_mount: '/boot', root_param: rootParam, append, grub_uuid: FAT_UUID, ...conf };
  const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  await writeFile(join(dir, 'etc/fleetlab/bootloader.conf'), '# Written with the disk: what fleetlab-install-bootloader writes for, and how.\n' + Object.entries(all).map(([key, v]) => `${key}=${quote(v)}`).join('\n') + '\n');
  const r: NixosRoot = {
    image: join(i.work, 'root.ext4'),
    gen1: { toplevel: g.path, kernel: `${k.kernel}/${k.kernelFile}`, initrd: `${k.initrd}/initrd`, version: GEN1.version, params: '', dtbs: k.dtbs },
    rootParam,
    append,
  };
  await extra?.(dir, r);
  // A system with Nix has its store registered in its database, as nixos-install and make-disk-image leave it.
  if (existsSync(join(dir, 'usr/bin/nix-store'))) await registerClosure(dir, g.closure);
  // Stage 2 with root-only packages is as big as they make it; the others keep their layouts' sizes.
  const used = Number((await execa('du', ['-sm', '--apparent-size', dir])).stdout.split('\t')[0]);
  const base = i.arch === 'arm64' ? 160 : 128;
  await ext4Image(r.image, i.image.stage2 ? Math.max(base, Math.ceil(used * 1.3) + 32) : base, label, dir);
  return r;
}

/** A generation's kernel command line exactly as fleetlab-install-bootloader writes it (params()). */
function entryParams(r: NixosRoot, id: string): string {
  return oneLine(`init=${r.gen1.toplevel}/init ${r.rootParam} ${r.append} ${r.gen1.params} fleetlab.entry=${id}`);
}

/** A fresh NixOS sd-image's extlinux.conf: only "nixos-default" (sd-image-aarch64.nix runs the builder before any generation link exists). */
function extlinuxEntries(): BootEntry[] {
  return [{ id: 'nixos-default', title: 'NixOS - Default' }];
}

/** The NIXOS_SD root of an extlinux disk with /boot/extlinux/extlinux.conf as NixOS's generic-extlinux writes it (FDTDIR when `fdt`). */
async function extlinuxRoot(i: LayoutInput, fdt: boolean): Promise<NixosRoot> {
  // Tenths of a second; 0 would wait for a choice forever.
  return nixosRoot(i, 'NIXOS_SD', { flavour: 'extlinux', boot_device: '', timeout: '1', fdtdir: fdt ? '1' : '' }, async (dir, r) => {
    const g = r.gen1;
    const lines = [
      '# Generated file, all changes will be lost on nixos-rebuild!',
      '',
      '# Change this to e.g. nixos-42 to temporarily boot to an older configuration.',
      'DEFAULT nixos-default',
      '',
      'MENU TITLE ------------------------------------------------------------',
      'TIMEOUT 1',
    ];
    for (const e of extlinuxEntries()) {
      lines.push('', `LABEL ${e.id}`, `  MENU LABEL ${e.title}`, `  LINUX ../nixos/${storeName(g.kernel)}`, `  INITRD ../nixos/${storeName(g.initrd)}`, `  APPEND ${entryParams(r, e.id)}`);
      if (fdt) lines.push(`  FDTDIR ../nixos/${basename(g.dtbs!)}`);
    }
    await mkdir(join(dir, 'boot/extlinux'), { recursive: true });
    await mkdir(join(dir, 'boot/nixos'), { recursive: true });
    await writeFile(join(dir, 'boot/extlinux/extlinux.conf'), lines.join('\n') + '\n');
    await copyFile(i.image.kernelImage, join(dir, 'boot/nixos', storeName(g.kernel)));
    await copyFile(i.image.stage1, join(dir, 'boot/nixos', storeName(g.initrd)));
    if (fdt) await execa('cp', ['-r', join(dir, g.dtbs!), join(dir, 'boot/nixos', basename(g.dtbs!))]);
  });
}

/** GRUB's files on the boot partition as NixOS writes them (fleetlab-install-bootloader's grub branch): grub/grub.cfg with "NixOS - Default" and a submenu of configurations, grubenv, kernels/. */
function grubFiles(i: LayoutInput, r: NixosRoot, terminal: string): { files: FatFile[]; entries: BootEntry[] } {
  const kernel = `kernels/${storeName(r.gen1.kernel)}`;
  const initrd = `kernels/${storeName(r.gen1.initrd)}`;
  const def = { id: 'nixos-default', title: 'NixOS - Default' };
  const gen = { id: 'nixos-generation-1', title: `NixOS - Configuration 1 (${GEN1_DATE} - ${r.gen1.version})` };
  const body = (e: BootEntry) => `  search --set=drive1 --fs-uuid ${FAT_UUID}\n  linux ($drive1)/${kernel} ${entryParams(r, e.id)}\n  initrd ($drive1)/${initrd}\n`;
  // The header indented as install-grub.pl emits it (its heredoc's indentation: `          set timeout=N`).
  const cfg = [
    '# Automatically generated.  DO NOT EDIT THIS FILE!',
    terminal,
    '        if [ -s $prefix/grubenv ]; then',
    '          load_env',
    '        fi',
    '        # grub-reboot sets a one-time saved entry, which we process here and then delete.',
    '        if [ "${next_entry}" ]; then',
    '          set default="${next_entry}"',
    '          set next_entry=',
    '          save_env next_entry',
    '          set timeout=1',
    '          set boot_once=true',
    '        else',
    '          set default=0',
    '          set timeout=0',
    '        fi',
    `menuentry "${def.title}" --class nixos --unrestricted {`,
    body(def) + '}',
    'submenu "NixOS - All configurations" --class submenu {',
    `menuentry "${gen.title}" --class nixos {`,
    body(gen) + '}',
    '}',
    '',
  ].join('\n');
  const grubenv = Buffer.alloc(1024, '#');
  grubenv.write('# GRUB Environment Block\n');
  return {
    files: [
      ['grub/grub.cfg', Buffer.from(cfg)],
      ['grub/grubenv', grubenv],
      [kernel, i.image.kernelImage],
      [initrd, i.image.stage1],
    ],
    entries: [def, gen],
  };
}

/** A kernel command line on one line with single spaces. */
export function oneLine(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

/**
 * A GRUB image for `format` with the modules built in and a first config that finds the boot partition: by the volume
 * id fleetlab gives its FAT, or, with `findFile`, as the partition holding that file (an installer's GRUB, which
 * cannot know the id mkfs.fat will choose).
 */
export async function grubImage(grubDir: string, format: string, out: string, work: string, modules: string[], findFile?: string): Promise<void> {
  const early = join(work, `early-${format}.cfg`);
  const search = findFile ? `search --no-floppy --file --set=root ${findFile}` : `search --no-floppy --fs-uuid --set=root ${FAT_UUID}`;
  const prefix = findFile ? findFile.slice(0, findFile.lastIndexOf('/')) : '/grub';
  await writeFile(early, `${search}\nset prefix=($root)${prefix}\nconfigfile $prefix/grub.cfg\n`);
  await runTool('grub-mkimage', ['-d', grubDir, '-O', format, '-o', out, '-p', prefix, '-c', early, ...modules], { purpose: BUILDING });
}

export type FatFile = [dest: string, src: string | Buffer];

/** A FAT image (FAT32 unless `bits` says) of `sizeMiB` holding `files` (mkfs.fat + mtools: no mount needed). */
export async function fatImage(path: string, sizeMiB: number, label: string, files: FatFile[], bits: 12 | 16 | 32 = 32): Promise<void> {
  await runTool('mkfs.fat', ['-F', String(bits), '-n', label, '-i', FAT_SERIAL, '-C', path, String(sizeMiB * 1024)], { purpose: BUILDING });
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
