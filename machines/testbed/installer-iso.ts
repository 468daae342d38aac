// The testbed's installer ISO, built like NixOS's installation CD (grub-mkrescue's El Torito layout, made with
// xorriso): bootable from a CD-ROM on a BIOS (GRUB i386-pc), 64-bit UEFI (GRUB x86_64-efi as EFI/BOOT/BOOTX64.EFI)
// and 32-bit UEFI (GRUB i386-efi as BOOTIA32.EFI, for the T100TA). It boots the testbed's kernel and initrd with
// fleetlab.installer on the command line (the CD then mounts on /iso and its store on /nix), and carries one system
// to install: generation 1 of a target boot layout, its closure registered for nixos-install (the testbed's
// stand-in, machines/testbed/rootfs/usr/bin/nixos-install), including the loader binaries it installs.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { buildOnce, viaIndex } from '../../harness/cache/cached-build.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { sourceFile } from '../../harness/package-files.ts';
import { runTool } from '../../harness/qemu/host-packages.ts';
import type { InstallerIso, TestbedImage } from '../../harness/qemu/testbed-source.ts';
import type { BootLayout } from '../../harness/qemu/profile.ts';
import { fatImage, GEN1, grubImage, oneLine } from './boot-disk.ts';
import { aptListsStamp, resolvePackage, unpackDeb, type DebPackage } from './debian-packages.ts';
import { buildInstallableSystem, INSTALL_LAYOUTS, loaderPackages, SYSTEM_INPUTS } from './installable.ts';
import { testbedRecipes } from './index.ts';

const BUILDING = 'building the installer ISO';
/** The file GRUB on the CD finds its own partition by (its grub.cfg sits beside it). */
const ISO_MARK = '/boot/grub/fleetlab-installer';
/** What the installer ISO can install: the layouts of x86 machines booting from a disk through their firmware. */
export const ISO_LAYOUTS = INSTALL_LAYOUTS;

/** Builds (or finds in the cache) the installer ISO whose system installs in `layout`; `append` goes on its kernel command lines. */
export async function ensureInstallerIso(image: TestbedImage, layout: BootLayout, append: string, opts: { log?: (line: string) => void } = {}): Promise<InstallerIso> {
  if (!(ISO_LAYOUTS as readonly string[]).includes(layout)) {
    throw new ConfigurationError(`the testbed's installer ISO installs systems that boot with ${ISO_LAYOUTS.join(', ')}; layout "${layout}" boots from an SD image or a kernel (use install.sdImage)`);
  }
  if (testbedRecipes[image.recipe]!.debArch !== 'amd64') throw new ConfigurationError(`the testbed's installer ISO is built for x86_64 testbeds; ${image.recipe} is not one`);
  // The system on the CD is installable.ts's, so its inputs are part of the ISO's key.
  const builder = Buffer.concat(await Promise.all([sourceFile(import.meta.url), ...SYSTEM_INPUTS].map((f) => readFile(f))));
  const local = createHash('sha256').update(`${image.key}\0${layout}\0${append}\0`).update(builder).digest('hex');
  return viaIndex(
    cacheDir('images', `iso-${image.recipe}-${layout}.index.json`),
    `${local}|${await aptListsStamp()}`,
    (iso) => existsSync(iso.path),
    async () => {
      // GRUB for the CD's three boots, and the loader of the system it installs.
      const cd = await Promise.all(['grub-pc-bin', 'grub-efi-amd64-bin', 'grub-efi-ia32-bin'].map((p) => resolvePackage(p, 'amd64')));
      const loader = await loaderPackages(layout, 'amd64');
      const pkgs = [...cd, ...loader.filter((l) => !cd.some((p) => p.name === l.name))];
      const h = createHash('sha256').update(local);
      for (const p of pkgs) h.update(`${p.name}=${p.version}:${p.arch}\n`);
      const key = h.digest('hex').slice(0, 16);
      const dir = cacheDir('images', `iso-${image.recipe}-${layout}-${key}`);
      return buildOnce(dir, false, async (out, work) => {
        opts.log?.(`building the installer ISO for ${layout} systems on testbed ${image.recipe} into ${dir}`);
        const bl = join(work, 'bootloader');
        for (const p of pkgs) await unpackDeb(p, bl);
        const iso = await buildIso(image, layout, oneLine(append), work, bl, join(out, 'installer.iso'), loader);
        return { ...iso, path: join(dir, 'installer.iso'), key };
      });
    },
  );
}

async function buildIso(image: TestbedImage, layout: BootLayout, append: string, work: string, bl: string, out: string, loader: DebPackage[]): Promise<Omit<InstallerIso, 'key'>> {
  const root = join(work, 'iso');
  await mkdir(join(root, 'boot/grub'), { recursive: true });
  // The system to install: generation 1 with its loader binaries, its closure registered for nixos-install.
  const g = await buildInstallableSystem(image, layout, append, work, bl, root, loader);
  const registry = join(root, 'nix/var/nix/closures');
  await mkdir(registry, { recursive: true });
  await writeFile(join(registry, g.system.split('/').pop()!), g.closure.join('\n') + '\n');

  // The live system: the testbed's kernel and initrd (the latter is also the base nixos-install copies).
  await copyFile(image.kernelImage, join(root, 'boot/bzImage'));
  await copyFile(image.initrd, join(root, 'boot/initrd'));
  await writeFile(join(root, ISO_MARK), 'fleetlab testbed installer\n');
  const cfg = [
    'if [ "$grub_platform" = pc ]; then',
    '  serial --unit=0 --speed=115200',
    '  terminal_input serial console',
    '  terminal_output serial console',
    'fi',
    'set timeout=0',
    `menuentry "NixOS ${GEN1.version} Installer (fleetlab testbed, Linux ${image.kernelVersion})" {`,
    `  linux /boot/bzImage ${append} fleetlab.installer=1`,
    '  initrd /boot/initrd',
    '}',
    '',
  ].join('\n');
  await writeFile(join(root, 'boot/grub/grub.cfg'), cfg);

  // El Torito: GRUB i386-pc for BIOS, and a FAT image with GRUB for both UEFI widths.
  const cdModules = ['iso9660', 'normal', 'linux', 'search', 'search_fs_file', 'configfile', 'echo', 'test', 'serial', 'terminal'];
  await grubImage(join(bl, 'usr/lib/grub/i386-pc'), 'i386-pc-eltorito', join(root, 'boot/grub/bios.img'), work, ['biosdisk', ...cdModules], ISO_MARK);
  const x64 = join(work, 'BOOTX64.EFI');
  const ia32 = join(work, 'BOOTIA32.EFI');
  await grubImage(join(bl, 'usr/lib/grub/x86_64-efi'), 'x86_64-efi', x64, work, ['part_gpt', 'part_msdos', 'fat', 'efi_gop', ...cdModules], ISO_MARK);
  await grubImage(join(bl, 'usr/lib/grub/i386-efi'), 'i386-efi', ia32, work, ['part_gpt', 'part_msdos', 'fat', 'efi_gop', ...cdModules], ISO_MARK);
  await fatImage(join(root, 'boot/efi.img'), 8, 'EFIBOOT', [['EFI/BOOT/BOOTX64.EFI', x64], ['EFI/BOOT/BOOTIA32.EFI', ia32]], 12);

  const volid = `nixos-testbed-${image.kernelVersion.split('-')[0]}-x86_64`.slice(0, 32);
  await runTool(
    'xorriso',
    ['-as', 'mkisofs', '-quiet', '-R', '-J', '-V', volid, '-o', out, '-b', 'boot/grub/bios.img', '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table', '-eltorito-alt-boot', '-e', 'boot/efi.img', '-no-emul-boot', root],
    { purpose: BUILDING, timeout: 120_000 },
  );
  if (!existsSync(out)) throw new InfrastructureError(`xorriso wrote no ${out}`);
  return { path: out, layout, system: g.system, volumeId: volid };
}
