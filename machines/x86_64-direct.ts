// x86_64 testbed by direct kernel boot on q35: the fast default for tests (no firmware menu, PVH entry).
// CPU: none named, so QEMU's default model (qemu64) under TCG and the host's CPU (-cpu host) under KVM; set qemu.cpu
// to pin a model everywhere. NIC model and disk bus are what the network and install work attach.
import { defineProfile } from '../harness/qemu/profile.ts';

export default defineProfile({
  name: 'x86_64-direct',
  description: 'x86_64 q35, direct kernel boot of the testbed; root shell on hvc0, login on ttyS0',
  arch: 'x86_64',
  qemu: { binary: 'qemu-system-x86_64', machine: 'q35', memoryMiB: 256, smp: 1, diskBus: 'virtio', nicModel: 'virtio-net-pci' },
  accel: 'auto',
  firmware: { kind: 'bios' },
  boot: { kind: 'testbed', image: 'x86_64', append: 'console=ttyS0 panic=-1' },
  consoles: [
    { name: 'serial0', device: 'serial' },
    { name: 'hvc0', device: 'virtconsole' },
  ],
  serialConsole: 'serial0',
  display: 'std',
  guest: {
    shell: { kind: 'backdoor', console: 'hvc0' },
    login: { user: 'root', password: 'fleetlab' },
    poweroffCommand: 'poweroff',
    rebootCommand: 'reboot',
  },
});
