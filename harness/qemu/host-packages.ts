// Which Debian package provides each QEMU binary and tool fleetlab calls, for "install X" messages.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian packages of the QEMU binaries. */
export const QEMU_PACKAGES: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-system-i386': 'qemu-system-x86',
  'qemu-system-aarch64': 'qemu-system-arm',
  'qemu-system-arm': 'qemu-system-arm',
};

/** Debian packages of the host tools fleetlab uses. */
export const TOOL_PACKAGES: Record<string, string> = {
  'qemu-img': 'qemu-utils',
  setpriv: 'util-linux',
  socat: 'socat',
  vde_switch: 'vde2',
  busybox: 'busybox-static',
  dropbear: 'dropbear-bin',
  cpio: 'cpio',
  xz: 'xz-utils',
  sgdisk: 'gdisk',
  mcopy: 'mtools',
  fdtput: 'device-tree-compiler',
  tshark: 'tshark',
  nix: 'nix-bin',
};

/** The absolute path of `cmd` on PATH (or as given, if absolute), or undefined. */
export function which(cmd: string): string | undefined {
  const candidates = cmd.includes('/') ? [cmd] : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}
