// Which Debian package provides each QEMU binary and tool fleetlab calls, for "install X" messages, and how to run them.
import { execa } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';

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
  dropbearkey: 'dropbear-bin',
  dropbearconvert: 'dropbear-bin',
  tcpdump: 'tcpdump',
  // The network fabric's switch (harness/net/switch/fleetlab-switch.c) is compiled on first use.
  cc: 'gcc',
  // The testbed's batman-adv without network coding (machines/testbed/batman-adv.ts) is built with the kernel's kbuild.
  make: 'make',
  strip: 'binutils',
  'aarch64-linux-gnu-strip': 'binutils-aarch64-linux-gnu',
  'nix-instantiate': 'nix-bin',
  cpio: 'cpio',
  xz: 'xz-utils',
  mcopy: 'mtools',
  mmd: 'mtools',
  mdir: 'mtools',
  mtype: 'mtools',
  'mkfs.fat': 'dosfstools',
  mke2fs: 'e2fsprogs',
  sfdisk: 'fdisk',
  'grub-mkimage': 'grub-common',
  'grub-mkrescue': 'grub-common',
  xorriso: 'xorriso',
  readelf: 'binutils',
  dd: 'coreutils',
  fdtput: 'device-tree-compiler',
  tshark: 'tshark',
  tesseract: 'tesseract-ocr',
  nix: 'nix-bin',
  'nix-store': 'nix-bin',
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

/** Options of runTool. */
export interface RunToolOptions {
  input?: string;
  env?: Record<string, string>;
  /** Default 10 minutes. */
  timeout?: number;
  /** What needs the tool, for the "not installed" message: "building a boot disk". */
  purpose?: string;
  /** The failure's message before the tool's stderr (default: the command line and exit code). */
  failure?: string;
  /** Configuration when a failure means bad input (the user's image), else infrastructure. */
  failAs?: 'configuration' | 'infrastructure';
  details?: Record<string, unknown>;
}

/**
 * Runs a host tool (sbin directories included) and returns its stdout. A missing tool is a ConfigurationError
 * naming its Debian package; a non-zero exit throws with the tool's stderr.
 */
export async function runTool(tool: string, args: string[], opts: RunToolOptions = {}): Promise<string> {
  const res = await execa(tool, args, {
    reject: false,
    input: opts.input,
    timeout: opts.timeout ?? 600_000,
    env: { PATH: `${process.env.PATH}:/usr/sbin:/sbin`, ...opts.env },
  });
  if ((res as { code?: string }).code === 'ENOENT' || res.exitCode === 127) {
    const pkg = TOOL_PACKAGES[tool];
    throw new ConfigurationError(
      `${opts.purpose ?? 'fleetlab'} needs ${tool}, which is not installed.` + (pkg ? ` Install the Debian package ${pkg}: apt-get install ${pkg} (scripts/setup.sh does).` : ''),
      { details: { tool, package: pkg } },
    );
  }
  if (res.exitCode !== 0) {
    const what = opts.failure ?? `${tool} ${args.join(' ')} failed (${res.timedOut ? 'timed out' : `exit ${res.exitCode}`})`;
    const message = `${what}: ${(res.stderr || res.stdout).trim()}`;
    throw opts.failAs === 'configuration' ? new ConfigurationError(message, { details: opts.details }) : new InfrastructureError(message);
  }
  return res.stdout;
}
