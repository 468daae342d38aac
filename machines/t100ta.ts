// Asus T100TA-like (Bay Trail): 32-bit UEFI on a 64-bit CPU. OVMF ia32 on qemu-system-x86_64, GRUB i386-efi installed
// as the removable EFI/BOOT/BOOTIA32.EFI, booting the 64-bit kernel in EFI mixed mode: the guest sees
// /sys/firmware/efi/fw_platform_size = 32 and uname -m = x86_64.
// Debian's ovmf-ia32 ships only the secure-boot build, which needs SMM (q35,smm=on and the secure pflash).
// GRUB i386-efi runs out of memory loading the kernel with 256 MiB, hence 512 (the real tablet has 2 GiB).
// Not emulated: the tablet's eMMC (SDHCI/ACPI), its Wi-Fi, touch screen and Atom-specific devices.
import { extendProfile } from '../harness/qemu/profile.ts';
import direct from './x86_64-direct.ts';

export default extendProfile(direct, {
  name: 't100ta',
  description: 'x86_64 q35 with 32-bit OVMF (ia32, SMM), GRUB i386-efi as BOOTIA32.EFI, 64-bit kernel in mixed mode',
  qemu: { memoryMiB: 512 },
  firmware: { kind: 'uefi', code: '/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd', vars: '/usr/share/OVMF/OVMF32_VARS_4M.fd', package: 'ovmf-ia32', smm: true, bits: 32 },
  boot: { kind: 'testbed-disk', image: 'x86_64', layout: 'grub-efi-ia32', append: 'console=ttyS0 panic=-1' },
});
