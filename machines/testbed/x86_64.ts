// Recipe of the x86_64 testbed guest: Debian's amd64 kernel and busybox-static, booted directly.
import { INSTALL_TOOLS, type TestbedRecipe } from './recipe.ts';

/**
 * x86_64 testbed: root shell on hvc0, serial login root/fleetlab, hostname from the machine's name. Its CD-ROM
 * modules (ahci, sr_mod, isofs) are loaded only when it boots as the installer (fleetlab.installer on the command line).
 */
export const x86_64Testbed: TestbedRecipe = {
  name: 'x86_64',
  debArch: 'amd64',
  kernelPackage: 'linux-image-amd64',
  busyboxPackage: 'busybox-static',
  modules: ['virtio_pci', 'virtio_console', 'virtio_net', 'virtio_blk', 'virtio_rng', 'bochs', 'e1000', 'efivarfs', 'qemu_fw_cfg', 'batman-adv', 'ext4', 'crc32c_generic', 'vfat', 'nls_cp437', 'nls_iso8859-1', 'nls_utf8', 'nls_ascii', 'ahci', 'sr_mod', 'isofs'],
  bootModules: ['virtio_pci', 'virtio_console', 'virtio_rng', 'virtio_net', 'virtio_blk', 'efivarfs', 'qemu_fw_cfg', 'crc32c_generic', 'ext4', 'vfat', 'nls_cp437', 'nls_iso8859-1', 'nls_utf8', 'nls_ascii'],
  extractVmlinux: true,
  // SSH (dropbear, key authentication for root; keys made per cache build), batman-adv's batctl, and what an
  // installer partitions and formats with (sfdisk, mkfs.fat, mkfs.ext4, resize2fs), with their libraries.
  extraPackages: ['libc6', 'dropbear-bin', 'libcrypt1', 'libtomcrypt1', 'libtommath1', 'zlib1g', 'batctl', 'libnl-3-200', 'libnl-genl-3-200', ...INSTALL_TOOLS],
  users: [{ name: 'root', password: 'fleetlab', uid: 0, home: '/root' }],
};
