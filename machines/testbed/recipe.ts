// The shape of a testbed recipe: which Debian packages and settings make a small guest fleetlab can boot.

/** A user the testbed's serial login accepts. */
export interface TestbedUser {
  name: string;
  password: string;
  uid: number;
  home: string;
}

/** What a testbed guest is built from: plain data, hashed into the image's cache key. */
export interface TestbedRecipe {
  /** Image name: "x86_64". */
  name: string;
  /** Debian architecture of the packages: amd64, arm64. */
  debArch: string;
  /** Kernel package; a meta package (linux-image-amd64) is resolved to the versioned one it depends on. */
  kernelPackage: string;
  /** busybox-static for the guest's architecture. */
  busyboxPackage: string;
  /** Kernel modules copied into the initramfs, with their dependencies (available to modprobe). */
  modules: string[];
  /** Modules loaded at boot, in order. */
  bootModules: string[];
  /** Extract the uncompressed ELF kernel from the bzImage: x86 boots it through PVH, skipping decompression. */
  extractVmlinux: boolean;
  /** Serial login users. */
  users: TestbedUser[];
  /**
   * Device trees copied from the kernel package (path under usr/lib/linux-image-<version>/), with nodes removed
   * where QEMU's model lacks the device (the Pi's Bluetooth UART child hides ttyAMA0).
   */
  deviceTrees?: Array<{ file: string; removeNodes?: string[] }>;
  /**
   * Debian packages (of debArch) unpacked into the guest with their shared libraries, for variants that are not
   * pure busybox: ['dash', 'libc6'] gives a guest whose /bin/sh is Debian's dash. Documentation is left out.
   */
  extraPackages?: string[];
  /** What /bin/sh is: busybox's ash (default), or a shell from extraPackages ('dash', 'bash'). */
  shell?: string;
  /**
   * Debian packages (with their shared libraries) for stage 2 only: on the root filesystem (rootfs.ext4 and the
   * disk images' roots), never in the initramfs, as NixOS keeps Nix in the store and not in stage 1. For what is too
   * big to load with every boot: Nix's closure is about 80 MB.
   */
  rootPackages?: string[];
  /** A folder under machines/testbed/ whose files are laid over the testbed's rootfs (units of the systemd variant). */
  overlay?: string;
  /** Folders under usr/share/ the packages' unpacking keeps (it drops usr/share): 'dbus-1' holds dbus's bus policy. */
  keepShare?: string[];
  /**
   * The batman-adv module, where `modules` has it: 'without-network-coding' (the default: batman-adv as it has
   * shipped since 2025.4, built from the kernel's own Debian source, machines/testbed/batman-adv.ts) or 'debian' (the
   * kernel package's, with network coding compiled in, whose 10 ms worker keeps an idle meshed guest busy under TCG).
   */
  batmanAdv?: 'without-network-coding' | 'debian';
  /** Symbolic links made in the guest, path (relative to /) → target: enabled and masked systemd units. */
  links?: Record<string, string>;
}

export type { TestbedImage } from '../../harness/qemu/testbed-source.ts';

/**
 * Debian packages of what NixOS's installer and sd-image use to partition, format and grow disks: sfdisk (fdisk),
 * mkfs.ext4, e2label and resize2fs (e2fsprogs), mkfs.fat and fatlabel (dosfstools); kexec (kexec-tools) for
 * nixos-anywhere's kexec into the installer, and bash (with libtinfo6), which runs nixos-anywhere's kexec script on
 * the target (/bin/sh stays busybox's). Libraries no program links are left out (build.ts pruneLibraries).
 */
export const INSTALL_TOOLS = ['fdisk', 'e2fsprogs', 'dosfstools', 'kexec-tools', 'bash', 'libtinfo6'];
