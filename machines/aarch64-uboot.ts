// aarch64 QEMU virt with U-Boot (Debian's u-boot-qemu) as firmware, reading /boot/extlinux/extlinux.conf from the
// bootable ext4 partition of an MBR disk: the way NixOS's sd-image boots on boards (LABEL nixos-default).
import { extendProfile } from '../harness/qemu/profile.ts';
import uefi from './aarch64-uefi.ts';

export default extendProfile(uefi, {
  name: 'aarch64-uboot',
  description: 'aarch64 virt (cortex-a57) with U-Boot, extlinux.conf on an MBR virtio disk (NixOS sd-image layout)',
  firmware: { kind: 'bios-file', path: '/usr/lib/u-boot/qemu_arm64/u-boot.bin', package: 'u-boot-qemu' },
  boot: { kind: 'testbed-disk', image: 'aarch64', layout: 'extlinux', append: 'console=ttyAMA0 panic=-1' },
});
