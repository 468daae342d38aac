// What an installer installs on the testbed: generation 1 of a boot layout with the loader binaries it installs as a
// store path of their own (nixos-install writes the machine's bootloader.conf from the toplevel's), and, for
// nixos-anywhere, the testbed's stand-ins for its other two inputs: a disko script (partition, format, mount on /mnt)
// and a kexec tarball (nixos-images' layout: kexec/run, the kernel, the installer's initrd).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { buildOnce, viaIndex } from '../../harness/cache/cached-build.ts';
import { ConfigurationError } from '../../harness/errors/fleetlab-error.ts';
import { sourceDir, sourceFile } from '../../harness/package-files.ts';
import type { BootLayout } from '../../harness/qemu/profile.ts';
import type { InstallableSystem, TestbedImage } from '../../harness/qemu/testbed-source.ts';
import { GEN1, GENERATION_FILES, grubImage, oneLine, type FatFile } from './boot-disk.ts';
import { aptListsStamp, resolvePackage, unpackDeb, type DebPackage } from './debian-packages.ts';
import { buildGeneration, storeHash } from './generations.ts';
import { testbedRecipes } from './index.ts';

/** The files what this module builds comes from (itself, the disk builder's helpers, the generations): part of cache keys. */
export const SYSTEM_INPUTS = [sourceFile(import.meta.url), join(sourceDir(import.meta.url), 'boot-disk.ts'), ...GENERATION_FILES];
/** Where an installed GRUB finds its boot partition: the partition holding this file. */
const INSTALLED_GRUB_CFG = '/grub/grub.cfg';

/** Layouts an installer can install (a disk booted through the firmware): x86 BIOS and UEFI, Arm UEFI. */
export const INSTALL_LAYOUTS = ['grub-bios', 'systemd-boot', 'grub-efi-ia32'] as const;

type Arch = 'amd64' | 'arm64';

function archOf(image: TestbedImage): Arch {
  return testbedRecipes[image.recipe]!.debArch === 'arm64' ? 'arm64' : 'amd64';
}

/** The Debian packages of `layout`'s loader binaries. */
export async function loaderPackages(layout: BootLayout, arch: Arch): Promise<DebPackage[]> {
  if (!(INSTALL_LAYOUTS as readonly string[]).includes(layout)) throw new ConfigurationError(`an installer installs systems that boot with ${INSTALL_LAYOUTS.join(', ')}; layout "${layout}" boots from an SD image (use install.sdImage)`);
  if (layout !== 'systemd-boot' && arch !== 'amd64') throw new ConfigurationError(`layout ${layout} is a PC's; the ${arch} testbed installs with systemd-boot`);
  return [await resolvePackage(layout === 'systemd-boot' ? 'systemd-boot-efi' : layout === 'grub-bios' ? 'grub-pc-bin' : 'grub-efi-ia32-bin', arch)];
}

/**
 * Generation 1 for `layout`, with its loader store path, built under `root` (which becomes its closure's root);
 * `bl` holds the loader packages unpacked. Returns the toplevel and its closure.
 */
export async function buildInstallableSystem(image: TestbedImage, layout: BootLayout, append: string, work: string, bl: string, root: string, pkgs: DebPackage[]): Promise<{ system: string; closure: string[] }> {
  const loader = await loaderStorePath(image, layout, append, work, bl, root, pkgs);
  const boot = bootloaderSettings(layout, append, loader);
  const g = await buildGeneration(image, archOf(image), { version: GEN1.version, bootloader: boot, extraClosure: [loader] }, root);
  return { system: g.path, closure: g.closure };
}

/** The boot loader settings of the installed system (its bootloader.conf, less the devices nixos-install finds). */
function bootloaderSettings(layout: BootLayout, append: string, loader: string): Record<string, string> {
  const common = { boot_mount: '/boot', append, timeout: '0', loader };
  switch (layout) {
    case 'systemd-boot':
      return { flavour: 'systemd-boot', ...common };
    case 'grub-bios':
      return { flavour: 'grub', grub_terminal: 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console', ...common };
    default:
      return { flavour: 'grub', grub_terminal: '', ...common };
  }
}

/**
 * The loader binaries of `layout` as a store path under `root`: boot/ is copied onto the boot partition (EFI
 * binaries at the removable path), mbr/ holds GRUB's boot.img and core.img for a BIOS disk.
 */
async function loaderStorePath(image: TestbedImage, layout: BootLayout, append: string, work: string, bl: string, root: string, pkgs: DebPackage[]): Promise<string> {
  const arch = archOf(image);
  const name = layout === 'systemd-boot' ? 'systemd-boot' : `grub-${layout === 'grub-bios' ? 'i386-pc' : 'i386-efi'}`;
  const version = pkgs[0]!.version.replace(/[^a-zA-Z0-9._+-]/g, '_');
  const path = `/nix/store/${storeHash('loader', image.key, layout, append, version)}-${name}-${version}`;
  const dir = join(root, path);
  const files: FatFile[] = [];
  const diskModules = ['part_msdos', 'part_gpt', 'fat', 'normal', 'linux', 'search', 'search_fs_file', 'search_fs_uuid', 'configfile', 'echo', 'test', 'loadenv'];
  if (layout === 'systemd-boot') {
    const efiArch = arch === 'arm64' ? 'aa64' : 'x64';
    const sdboot = join(bl, `usr/lib/systemd/boot/efi/systemd-boot${efiArch}.efi`);
    files.push([`boot/EFI/BOOT/BOOT${efiArch.toUpperCase()}.EFI`, sdboot], [`boot/EFI/systemd/systemd-boot${efiArch}.efi`, sdboot]);
  } else if (layout === 'grub-efi-ia32') {
    const efi = join(work, 'installed-BOOTIA32.EFI');
    await grubImage(join(bl, 'usr/lib/grub/i386-efi'), 'i386-efi', efi, work, [...diskModules, 'efi_gop'], INSTALLED_GRUB_CFG);
    files.push(['boot/EFI/BOOT/BOOTIA32.EFI', efi]);
  } else {
    const core = join(work, 'installed-core.img');
    await grubImage(join(bl, 'usr/lib/grub/i386-pc'), 'i386-pc', core, work, ['biosdisk', ...diskModules, 'serial', 'terminal'], INSTALLED_GRUB_CFG);
    files.push(['mbr/boot.img', join(bl, 'usr/lib/grub/i386-pc/boot.img')], ['mbr/core.img', core]);
  }
  for (const [dest, src] of files) {
    await mkdir(join(dir, dest, '..'), { recursive: true });
    await copyFile(src as string, join(dir, dest));
  }
  return path;
}

/**
 * disko's output for the testbed: a script (disko's `diskoScript`, a store path) that destroys what is on `disk`,
 * partitions it (GPT with a 128 MiB ESP on UEFI, MBR with a FAT /boot on a BIOS), formats it (FAT32 "boot", ext4
 * "nixos") and mounts it on /mnt, as a disko config with those two partitions would.
 */
function diskoScript(layout: BootLayout, disk: string): string {
  const uefi = layout !== 'grub-bios';
  const part = (n: number) => (/\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`);
  const table = uefi
    ? ['label: gpt', 'size=128MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=disk-main-ESP', 'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=disk-main-root']
    : ['label: dos', 'size=128MiB, type=c, bootable', 'type=83'];
  return [
    '#!/bin/sh',
    `# disko script, fleetlab testbed stand-in: ${disk} as a disko config with an ${uefi ? 'ESP' : 'MBR /boot'} and an ext4 root.`,
    'set -eu',
    '# destroy: whatever an earlier run left mounted or written',
    'umount /mnt/boot 2>/dev/null || true',
    'umount /mnt 2>/dev/null || true',
    `for p in ${part(1)} ${part(2)}; do [ -b "$p" ] && dd if=/dev/zero of="$p" bs=1M count=1 2>/dev/null || true; done`,
    '# create',
    `printf '%s\\n' ${table.map((l) => `'${l}'`).join(' ')} | sfdisk --quiet --wipe always ${disk}`,
    `i=0; while { [ ! -b ${part(1)} ] || [ ! -b ${part(2)} ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`,
    `mkfs.fat -F 32 -n boot ${part(1)} >/dev/null 2>&1`,
    `mkfs.ext4 -q -F -L nixos ${part(2)}`,
    '# mount',
    'mkdir -p /mnt',
    `mount ${part(2)} /mnt`,
    'mkdir -p /mnt/boot',
    `mount ${part(1)} /mnt/boot`,
    '',
  ].join('\n');
}

/** The kexec tarball's run script (nixos-images' kexec/run, testbed stand-in). */
const KEXEC_RUN = `#!/bin/sh
# nixos-images' kexec/run, fleetlab testbed stand-in: loads the installer's kernel and initrd with kexec and boots
# into it six seconds later (detached, so the SSH session that ran this returns first). root's authorized SSH keys
# travel with it in a cpio appended to the initrd, with the initrd itself as the base system nixos-install copies;
# the console and panic settings of the running kernel are kept. Extra flags for kexec: --kexec-extra-flags FLAGS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
flags=
[ "\${1:-}" = --kexec-extra-flags ] && flags=\${2:-}
extra=$here/extra
rm -rf "$extra"
mkdir -p "$extra/root/.ssh" "$extra/installer"
[ -r /root/.ssh/authorized_keys ] && cp /root/.ssh/authorized_keys "$extra/root/.ssh/"
cp "$here/initrd" "$extra/installer/base.cpio"
(cd "$extra" && find . | cpio -o -H newc 2>/dev/null) >"$here/extra.cpio"
# nix.cpio, where the tarball has it: Nix for the installer (nix-store --serve takes what nix copy sends).
cat "$here/initrd" $([ -e "$here/nix.cpio" ] && echo "$here/nix.cpio") "$here/extra.cpio" >"$here/initrd.full"
keep=
for a in $(cat /proc/cmdline); do
  case "$a" in console=* | panic=* | earlycon* | loglevel=*) keep="$keep $a" ;; esac
done
kernel=$(ls "$here"/bzImage "$here"/Image 2>/dev/null | head -n 1)
kexec --load "$kernel" --initrd="$here/initrd.full" --command-line="\${keep# } fleetlab.installer=kexec" $flags
echo "machine will boot into nixos in 6s..."
setsid sh -c 'sleep 6; kexec -e' >/dev/null 2>&1 </dev/null &
`;

/** Builds (or finds) what nixos-anywhere installs on `image`'s machines in `layout`: the system, the disko script, the kexec tarball. */
export async function ensureInstallableSystem(image: TestbedImage, layout: BootLayout, append: string, opts: { log?: (line: string) => void; disk?: string; nix?: TestbedImage } = {}): Promise<InstallableSystem> {
  const arch = archOf(image);
  const disk = opts.disk ?? '/dev/vda';
  if (!/^\/dev\/[a-z0-9]+$/.test(disk)) throw new ConfigurationError(`disk "${disk}": give the target disk's device, like /dev/vda or /dev/nvme0n1`);
  const builder = Buffer.concat(await Promise.all(SYSTEM_INPUTS.map((f) => readFile(f))));
  if (opts.nix && !opts.nix.stage2) throw new ConfigurationError(`testbed ${opts.nix.recipe} has no Nix in stage 2 to put in the kexec installer (use x86_64-nix)`);
  const local = createHash('sha256').update(`${image.key}\0${layout}\0${append}\0${disk}\0${opts.nix?.key ?? ''}\0`).update(builder).digest('hex');
  const flavour = opts.nix ? `${layout}-nix` : layout;
  return viaIndex(
    cacheDir('images', `installable-${image.recipe}-${flavour}.index.json`),
    `${local}|${await aptListsStamp()}`,
    (s) => existsSync(s.kexec),
    async () => {
      const pkgs = await loaderPackages(layout, arch);
      const key = createHash('sha256').update(local).update(pkgs.map((p) => `${p.name}=${p.version}`).join('\n')).digest('hex').slice(0, 16);
      const dir = cacheDir('images', `installable-${image.recipe}-${flavour}-${key}`);
      return buildOnce(dir, false, async (out, work) => {
        opts.log?.(`building the installable ${layout} system, disko script and kexec tarball for testbed ${image.recipe} into ${dir}`);
        const bl = join(work, 'bootloader');
        for (const p of pkgs) await unpackDeb(p, bl);
        const root = join(out, 'store');
        const { system, closure } = await buildInstallableSystem(image, layout, oneLine(append), work, bl, root, pkgs);
        const script = diskoScript(layout, disk);
        const disko = `/nix/store/${storeHash('disko', script)}-disko`;
        await mkdir(join(root, 'nix/store'), { recursive: true });
        await writeFile(join(root, disko), script);
        await chmod(join(root, disko), 0o755);
        // The kexec tarball, laid out as nixos-images' kexec-installer tarballs are.
        const k = join(work, 'kexec-tar/kexec');
        await mkdir(k, { recursive: true });
        await copyFile(image.kernelImage, join(k, arch === 'arm64' ? 'Image' : 'bzImage'));
        await copyFile(image.initrd, join(k, 'initrd'));
        await writeFile(join(k, 'run'), KEXEC_RUN, { mode: 0o755 });
        // With Nix (x86_64-nix's stage 2: Debian's nix-bin and its libraries) the installer receives closures by nix
        // copy, as nixos-images' installer does; the real nixos-anywhere sends them so.
        if (opts.nix) await copyFile(opts.nix.stage2!, join(k, 'nix.cpio'));
        const kexec = join(out, `nixos-kexec-installer-testbed-${arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux.tar.gz`);
        await execa('tar', ['-C', join(work, 'kexec-tar'), '-czf', kexec, 'kexec']);
        const final = (p: string) => join(dir, 'store', p);
        return { system, closure, systemPath: final(system), disko, diskoPath: final(disko), kexec: join(dir, kexec.split('/').pop()!), storeRoot: join(dir, 'store') };
      });
    },
  );
}
