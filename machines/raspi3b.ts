// Raspberry Pi 3B (QEMU's raspi3b): BCM2837, 4 Cortex-A53 cores, 1 GiB, SD card, PL011 UART (ttyAMA0).
//
// What it emulates of the fleet's Pis: the boot from an SD card with an MBR, a FAT firmware partition (config.txt,
// cmdline.txt, kernel8.img, initramfs, device tree) and a root partition; an arm64 kernel on a BCM283x device tree;
// the PL011 serial console; the SoC watchdog (reboot). A Zero 2W has the same BCM2837-class SoC (RP3A0), so its
// kernel, device tree family and firmware files are the closest QEMU gets to it.
// The SD card is laid out as NixOS's sd-image for the Pi: the firmware loads U-Boot (config.txt kernel=u-boot.bin,
// Debian's u-boot-rpi rpi_3 build), and U-Boot reads extlinux.conf and the device tree from the NIXOS_SD root; its
// menu is on the mini UART (serial1).
// What it does not: QEMU has no VideoCore firmware, so fleetlab reads config.txt and cmdline.txt itself, at each
// start and at each guest reboot (fleetlab restarts QEMU at the guest's reset, as the firmware would run again); there is no power-off (QEMU
// keeps running after "reboot: Power down"; fleetlab then stops it); no Wi-Fi/Bluetooth; USB without an Ethernet
// chip. A Pi 4 (BCM2711: PCIe, GENET Ethernet, GIC-400) is not emulated at all: QEMU 7.2 has no raspi4b, and its
// later raspi4b lacks PCIe. Use real boards in lab/ for those.
// No virtio console: the shell channel runs over a serial login on ttyAMA0. -accel tcg,thread=single: multi-threaded
// TCG took 21-47 s to boot this machine against ~3.5 s.
import { defineProfile } from '../harness/qemu/profile.ts';

export default defineProfile({
  name: 'raspi3b',
  description: 'Raspberry Pi 3B (QEMU raspi3b) booting an SD card image; shell over a serial login on ttyAMA0',
  arch: 'aarch64',
  qemu: { binary: 'qemu-system-aarch64', machine: 'raspi3b', memoryMiB: 1024, smp: 4, accelProps: 'thread=single', diskBus: 'sd', nicModel: 'usb-net' },
  accel: 'tcg',
  firmware: { kind: 'raspi' },
  boot: { kind: 'testbed-disk', image: 'aarch64', layout: 'raspi-uboot', append: 'console=ttyAMA0 panic=-1' },
  // serial0 is the PL011 (ttyAMA0: Linux's console and login), serial1 the mini UART, where U-Boot speaks.
  consoles: [{ name: 'serial0', device: 'serial' }, { name: 'serial1', device: 'serial' }],
  serialConsole: 'serial0',
  bootloaderConsole: 'serial1',
  display: 'none',
  guest: {
    shell: { kind: 'serial-login', console: 'serial0' },
    login: { user: 'root', password: 'fleetlab' },
    poweroffCommand: 'poweroff',
    rebootCommand: 'reboot',
  },
});
