// Recipe of the aarch64 testbed guest: Debian's arm64 kernel and busybox-static, for QEMU virt and the Raspberry Pi model.
import { INSTALL_TOOLS, type TestbedRecipe } from './recipe.ts';

/** aarch64 testbed: root shell on hvc0 where the machine has virtio (virt), serial login root/fleetlab everywhere. */
export const aarch64Testbed: TestbedRecipe = {
  name: 'aarch64',
  debArch: 'arm64',
  kernelPackage: 'linux-image-arm64',
  busyboxPackage: 'busybox-static',
  modules: ['virtio_pci', 'virtio_console', 'virtio_net', 'virtio_blk', 'virtio_rng', 'efivarfs', 'qemu_fw_cfg', 'bcm2835_wdt', 'sdhci_iproc', 'bcm2835', 'batman-adv', 'ext4', 'crc32c_generic', 'vfat', 'nls_cp437', 'nls_iso8859-1', 'nls_utf8', 'nls_ascii'],
  bootModules: ['virtio_pci', 'virtio_console', 'virtio_rng', 'virtio_net', 'virtio_blk', 'efivarfs', 'qemu_fw_cfg', 'bcm2835_wdt', 'sdhci_iproc', 'bcm2835', 'crc32c_generic', 'ext4', 'vfat', 'nls_cp437', 'nls_iso8859-1', 'nls_utf8', 'nls_ascii'],
  // Debian's arm64 vmlinuz is already an uncompressed Image (a PE/COFF EFI application as well).
  extractVmlinux: false,
  users: [{ name: 'root', password: 'fleetlab', uid: 0, home: '/root' }],
  // SSH (dropbear, key authentication for root; keys made per cache build), batman-adv's batctl and the install tools
  // (the SD image's first-boot resize uses sfdisk and resize2fs), with their libraries, as on x86_64.
  extraPackages: ['libc6', 'dropbear-bin', 'libcrypt1', 'libtomcrypt1', 'libtommath1', 'zlib1g', 'batctl', 'libnl-3-200', 'libnl-genl-3-200', ...INSTALL_TOOLS],
  deviceTrees: [
    // QEMU's raspi3b has no Bluetooth chip; with the node present the PL011 is handed to Bluetooth and ttyAMA0 never appears.
    { file: 'broadcom/bcm2837-rpi-3-b.dtb', removeNodes: ['/soc/serial@7e201000/bluetooth'] },
  ],
};
