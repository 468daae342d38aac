// Where QEMU machines get the testbed guests their profiles name (boot.kind testbed / testbed-disk). The recipes
// live above the provider, in machines/testbed, and register themselves here; the provider never imports them.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { GenerationSpec, Toplevel } from '../nixos/generation.ts';
import type { BootLayout } from './profile.ts';

/** The files a built testbed consists of. */
export interface TestbedImage {
  recipe: string;
  /** Cache key: hash of the recipe, its rootfs files, the builder and the package versions. */
  key: string;
  dir: string;
  /** The kernel to boot directly: the PVH ELF where extracted, else the compressed image. */
  kernel: string;
  /** The compressed kernel image as shipped (bzImage / Image). */
  kernelImage: string;
  /** The whole system as an initramfs (direct boots run from it; disk roots are made of it). */
  initrd: string;
  /**
   * Stage 1's initrd of NixOS-shaped generations (machines/testbed/stage1.ts): /init, busybox, the boot modules and
   * first-boot's tools, which mount the root and switch to it.
   */
  stage1: string;
  /** An ext4 root filesystem (label "nixos") holding the same system, for root= on the kernel command line. */
  rootfs?: string;
  /**
   * Stage 2's system as a cpio archive, where it holds more than the initramfs (a recipe's rootPackages, such as
   * Nix): disk roots unpack this instead of the initrd.
   */
  stage2?: string;
  kernelVersion: string;
  /** Device trees by file name (bcm2837-rpi-3-b.dtb), patched as the recipe says. */
  deviceTrees: Record<string, string>;
  packages: Record<string, string>;
  /** Where the image runs an SSH server: root's private key (OpenSSH format) and the server's public host key line. */
  ssh?: { user: string; privateKey: string; hostKey: string };
}

/** A boot entry: its id, carried on the kernel command line as fleetlab.entry=<id>, and its menu title. */
export interface BootEntry {
  id: string;
  title: string;
}

/** A built boot disk: a raw image never written by machines (they boot a qcow2 overlay of it). */
export interface BootDisk {
  path: string;
  layout: BootLayout;
  key: string;
  /** Boot entries on the disk, the default first. */
  entries: BootEntry[];
}

/** A built installer ISO: the live testbed, and one system on it to install (nixos-install --system). */
export interface InstallerIso {
  path: string;
  /** The boot layout the system on it installs. */
  layout: BootLayout;
  /** Its toplevel store path, in the ISO's /nix/store. */
  system: string;
  volumeId: string;
  key: string;
}

/**
 * What nixos-anywhere installs on a testbed machine (the testbed's stand-ins for a flake's outputs): the system's
 * toplevel and closure under a host directory laid out as a Nix store, the disko script, the kexec tarball.
 */
export interface InstallableSystem {
  /** The toplevel's store path (/nix/store/<hash>-nixos-system-testbed-<version>). */
  system: string;
  closure: string[];
  /** The host directory holding nix/store/<closure paths>, as a local Nix store would. */
  storeRoot: string;
  /** Host paths of the toplevel and the disko script under storeRoot: what nixos-anywhere --store-paths takes. */
  systemPath: string;
  disko: string;
  diskoPath: string;
  /** The kexec tarball (nixos-images' layout), for nixos-anywhere --kexec. */
  kexec: string;
}

type Log = (line: string) => void;

/** What machines/testbed provides: images by recipe name, and boot disks built from them. */
export interface TestbedSource {
  names(): string[];
  image(name: string, opts?: { log?: Log }): Promise<TestbedImage>;
  /** True when image(name) would find the image in the cache and build nothing. */
  cached(name: string): Promise<boolean>;
  bootDisk(image: TestbedImage, layout: BootLayout, append: string, opts?: { log?: Log }): Promise<BootDisk>;
  /** The installer ISO whose system installs in `layout` (x86_64 testbeds: grub-bios, systemd-boot, grub-efi-ia32). */
  installerIso(image: TestbedImage, layout: BootLayout, append: string, opts?: { log?: Log }): Promise<InstallerIso>;
  /** What nixos-anywhere installs on a machine of this image in `layout`: system, disko script, kexec tarball. */
  installableSystem(image: TestbedImage, layout: BootLayout, append: string, opts?: { log?: Log; disk?: string; nix?: TestbedImage }): Promise<InstallableSystem>;
  /** An SD image in NixOS's sd-image layout (extlinux, raspi-uboot) that grows its root at the first boot. */
  sdImage(image: TestbedImage, layout: BootLayout, append: string, opts?: { log?: Log }): Promise<BootDisk>;
  /** Builds a NixOS-shaped generation for `image` under `into` (the testbed's stand-in for building a toplevel). */
  generation(image: TestbedImage, spec: GenerationSpec, into: string): Promise<Toplevel>;
}

let registered: TestbedSource | undefined;

/** Registers the testbed recipes (machines/testbed/register.ts does, imported by the CLI and the public API). */
export function registerTestbedSource(source: TestbedSource): void {
  registered = source;
}

/** The registered source, if any (no error: for checks that can also wait until a machine starts). */
export function registeredTestbedSource(): TestbedSource | undefined {
  return registered;
}

/** The registered source; a configuration error when a profile names a testbed and none is registered. */
export function testbedSource(): TestbedSource {
  if (!registered) {
    throw new ConfigurationError(
      'A profile boots a fleetlab testbed, but no testbed recipes are registered. Import "fleetlab" (or machines/testbed/register.ts) before starting machines, or boot your own image (--image/--kernel).',
    );
  }
  return registered;
}

/** The testbed image `name`, a configuration error naming the field when there is no such recipe. */
export async function testbedImage(name: string, profile: string, log?: Log): Promise<TestbedImage> {
  const source = testbedSource();
  if (!source.names().includes(name)) {
    throw new ConfigurationError(`Profile ${profile}: boot.image "${name}" is no testbed recipe (have: ${source.names().join(', ')}).`, { details: { field: 'boot.image', value: name } });
  }
  return source.image(name, { log });
}
