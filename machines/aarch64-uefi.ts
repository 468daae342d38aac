// aarch64 QEMU virt with AAVMF (UEFI) and systemd-boot on an ESP, like a NixOS aarch64 UEFI machine.
// cortex-a57: -cpu max is ~3x slower to boot under TCG (pointer authentication).
import { defineProfile } from '../harness/qemu/profile.ts';

export default defineProfile({
  name: 'aarch64-uefi',
  description: 'aarch64 virt (cortex-a57) with AAVMF, systemd-boot on a GPT virtio disk; root shell on hvc0, login on ttyAMA0',
  arch: 'aarch64',
  qemu: { binary: 'qemu-system-aarch64', machine: 'virt', cpu: 'cortex-a57', memoryMiB: 512, smp: 1, diskBus: 'virtio', nicModel: 'virtio-net-pci' },
  accel: 'auto',
  firmware: { kind: 'uefi', code: '/usr/share/AAVMF/AAVMF_CODE.fd', vars: '/usr/share/AAVMF/AAVMF_VARS.fd', package: 'qemu-efi-aarch64' },
  boot: { kind: 'testbed-disk', image: 'aarch64', layout: 'systemd-boot', append: 'console=ttyAMA0 panic=-1' },
  consoles: [
    { name: 'serial0', device: 'serial' },
    { name: 'hvc0', device: 'virtconsole' },
  ],
  serialConsole: 'serial0',
  // virt has no VGA; add ['-device', 'virtio-gpu-pci'] to qemu.extraArgs for screenshots.
  display: 'none',
  guest: {
    shell: { kind: 'backdoor', console: 'hvc0' },
    login: { user: 'root', password: 'fleetlab' },
    poweroffCommand: 'poweroff',
    rebootCommand: 'reboot',
  },
});
