// The profile of the virtual lab's boards (lab/virtual/virtual-lab.ts): what scenarios see of them. A Pi-like board:
// aarch64, U-Boot reading extlinux.conf from its SD card (NixOS's sd-image layout), one serial line (ttyAMA0) with a
// login on it and no other console, so the shell channel runs over a serial login as on a real board.
import { extendProfile } from '../../harness/qemu/profile.ts';
import base from '../../machines/aarch64-uboot.ts';

export default extendProfile(base, {
  name: 'vboard',
  description: 'virtual lab board: aarch64 with U-Boot and extlinux on an SD card, one serial line with a login',
  consoles: [{ name: 'serial0', device: 'serial' }],
  // A board that goes silent this long while a command runs hangs (the guest sends a heartbeat every 5 s meanwhile).
  guest: { shell: { kind: 'serial-login', console: 'serial0', silenceLimitSeconds: 20 } },
});
