// x86_64 testbed with systemd as PID 1, by direct kernel boot: for the systemd API (waitForUnit, systemctl, user
// managers), virtual consoles and tests ported from the NixOS test driver. More memory than the busybox testbed:
// systemd, udev, dbus and logind run from the initramfs.
import { extendProfile } from '../harness/qemu/profile.ts';
import direct from './x86_64-direct.ts';

export default extendProfile(direct, {
  name: 'x86_64-systemd',
  description: 'x86_64 q35, direct kernel boot of the systemd testbed (Debian systemd, udev, dbus, logind); root shell on hvc0, login on ttyS0 and tty1',
  qemu: { memoryMiB: 768 },
  boot: { kind: 'testbed', image: 'x86_64-systemd', append: 'console=ttyS0 panic=-1' },
});
