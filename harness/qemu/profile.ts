// Machine profiles: typed, validated data that says what QEMU machine to build. Behaviour lives in QemuMachine.
import { z } from 'zod';

const consoleSpec = z.object({
  /** Name scenarios use: machine.console('serial0'). */
  name: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'lower-case letters, digits, - and _'),
  /** serial: the board's UART (16550 on x86, PL011 on Arm); virtconsole: a virtio console (hvc0, hvc1, ...). */
  device: z.enum(['serial', 'virtconsole']),
});

const firmwareSpec = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('bios') }),
  z.object({ kind: z.literal('none') }),
  z.object({
    kind: z.literal('uefi'),
    /** Read-only firmware code (pflash unit 0). */
    code: z.string(),
    /** Template of the EFI variable store, copied per machine (pflash unit 1). */
    vars: z.string(),
    /** Debian package that ships these files, for the error message when they are missing. */
    package: z.string(),
    /** Firmware built with secure boot/SMM needs the secure pflash and smm=on. */
    smm: z.boolean().default(false),
    /** Word size of the firmware: 32 for ia32 UEFI on a 64-bit CPU (the guest's /sys/firmware/efi/fw_platform_size). */
    bits: z.union([z.literal(32), z.literal(64)]).default(64),
  }),
  z.object({
    kind: z.literal('bios-file'),
    /** A -bios image (U-Boot for QEMU). */
    path: z.string(),
    package: z.string(),
  }),
  /**
   * Raspberry Pi: QEMU has no VideoCore firmware, so fleetlab plays its part at each start: it reads config.txt
   * and cmdline.txt from the SD card's first FAT partition and loads the kernel, initramfs and device tree they name.
   */
  z.object({ kind: z.literal('raspi') }),
]);

/** Boot layouts fleetlab builds testbed disks in (machines/testbed/boot-disk.ts). */
export const bootLayouts = ['grub-bios', 'grub-efi-ia32', 'systemd-boot', 'extlinux', 'raspi-firmware', 'raspi-uboot'] as const;
/** How a testbed disk boots: which bootloader, and so which NixOS boot layout. */
export type BootLayout = (typeof bootLayouts)[number];

const bootSpec = z.discriminatedUnion('kind', [
  /** A testbed image fleetlab builds from Debian packages (machines/testbed/). */
  z.object({ kind: z.literal('testbed'), image: z.string(), append: z.string().default('') }),
  /** A disk fleetlab builds from a testbed image, booted through the firmware and a real bootloader. */
  z.object({ kind: z.literal('testbed-disk'), image: z.string(), layout: z.enum(bootLayouts), append: z.string().default('') }),
  /** Direct kernel boot of files the user names. */
  z.object({
    kind: z.literal('kernel'),
    kernel: z.string(),
    initrd: z.string().optional(),
    dtb: z.string().optional(),
    append: z.string().default(''),
    /** A disk image attached while the kernel boots directly (as NixOS's build-vm does); written through an overlay. */
    image: z.string().optional(),
  }),
  /** A disk image or ISO the user names, booted through the firmware; machines write to a qcow2 overlay, never to it. */
  z.object({
    kind: z.literal('disk'),
    image: z.string(),
    /** QEMU's name of the image format; default: what qemu-img info says. */
    format: z.string().optional(),
    /** cdrom for installer ISOs; default: cdrom when the file name ends in .iso. */
    media: z.enum(['disk', 'cdrom']).optional(),
  }),
]);

const shellSpec = z.discriminatedUnion('kind', [
  /** NixOS test-instrumentation backdoor: a root shell on a virtio console. */
  z.object({
    kind: z.literal('backdoor'),
    console: z.string(),
    /**
     * Commands run strictly (default true): under `set -eu` and, where the guest's shell has it, `pipefail`, as the
     * NixOS test driver runs them. false: plain `sh` (each call's `{ strict }` still decides for itself).
     */
    strict: z.boolean().optional(),
  }),
  /**
   * A root shell started over a serial login (machines without a virtio console: boards, the Pi, images without the
   * NixOS test instrumentation): fleetlab logs in with guest.login, quiets kernel messages and runs the same
   * framed shell protocol on that console.
   */
  z.object({
    kind: z.literal('serial-login'),
    console: z.string(),
    /**
     * How long the line may stay silent while a command runs before the machine counts as hung (a board whose
     * kernel locked up): every wait on it then ends, naming the line. The guest sends a heartbeat every quarter of
     * it while a command runs. Unset: no limit (a command waits out its own timeout).
     */
    silenceLimitSeconds: z.number().min(4, 'at least 4 s: the guest sends a heartbeat every quarter of it').optional(),
    /** As the backdoor's: commands under `set -eu` and `pipefail` (default true), or plain `sh` with false. */
    strict: z.boolean().optional(),
  }),
  /** No shell channel: only consoles and power. */
  z.object({ kind: z.literal('none') }),
]);

/** The schema every profile is validated against when loaded. */
export const profileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, 'lower-case letters, digits, ., - and _'),
    description: z.string().default(''),
    arch: z.enum(['x86_64', 'aarch64', 'arm', 'i386']),
    qemu: z.object({
      binary: z.string(),
      machine: z.string(),
      cpu: z.string().optional(),
      memoryMiB: z.number().int().min(16).default(256),
      smp: z.number().int().min(1).default(1),
      /** How disks attach: virtio (virtio-blk-pci), ahci (SATA on q35), scsi (virtio-scsi), sd (the Pi's SD card slot). */
      diskBus: z.enum(['virtio', 'ahci', 'scsi', 'sd']).default('virtio'),
      /** QEMU device model of the machine's NICs (for networks; e1000, virtio-net-pci, usb-net). */
      nicModel: z.string().default('virtio-net-pci'),
      /** Extra -accel properties, e.g. "thread=single". */
      accelProps: z.string().optional(),
      /**
       * TCG's translation cache in MiB (-accel tcg,tb-size=N); QEMU's own default is 1 GiB, of which a VM holds what
       * its guest has run since it started (a restored meshed node ~30 MiB). Full, it is flushed and refilled with
       * what the guest runs next. Ignored under KVM.
       */
      tbSizeMiB: z.number().int().min(1).max(4096).optional(),
      extraArgs: z.array(z.string()).default([]),
    }),
    accel: z.enum(['auto', 'kvm', 'tcg', 'hvf']).default('auto'),
    firmware: firmwareSpec.default({ kind: 'bios' }),
    boot: bootSpec,
    consoles: z.array(consoleSpec).min(1),
    /** Where kernel messages and the login prompt appear. */
    serialConsole: z.string(),
    /** Where the boot loader's menu appears and takes keys, when not on serialConsole (the Pi's U-Boot: the mini UART). */
    bootloaderConsole: z.string().optional(),
    display: z.enum(['std', 'virtio', 'none']).default('std'),
    /**
     * Console checks (harness/console/console-checks.ts): patterns that fail a case the moment a console prints them.
     * `ignore` names built-in ones to switch off for this profile; `add` adds patterns (regular expressions as strings).
     */
    consoleChecks: z
      .object({
        add: z.array(z.object({ name: z.string(), pattern: z.string(), what: z.string().optional() })).default([]),
        ignore: z.array(z.string()).default([]),
      })
      .default({ add: [], ignore: [] }),
    guest: z.object({
      shell: shellSpec,
      login: z.object({ user: z.string(), password: z.string() }).optional(),
      poweroffCommand: z.string().default('poweroff'),
      rebootCommand: z.string().default('reboot'),
      /**
       * What fleetlab fetches from the machine when a case fails (harness/runner/evidence.ts): `add` commands whose
       * output is attached as evidence/<role>-<name>.txt, beside the built-in ones (dmesg, journal, failed-units,
       * generation) that `ignore` can switch off by name.
       */
      evidence: z
        .object({
          add: z.array(z.object({ name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, ".", "-" and "_" (a file name)'), command: z.string().min(1) })).default([]),
          ignore: z.array(z.string()).default([]),
        })
        .default({ add: [], ignore: [] }),
    }),
  })
  .superRefine((p, ctx) => {
    const names = new Set(p.consoles.map((c) => c.name));
    if (!names.has(p.serialConsole)) ctx.addIssue({ code: 'custom', path: ['serialConsole'], message: `names no console of this profile (have: ${[...names].join(', ')})` });
    if (p.bootloaderConsole !== undefined && !names.has(p.bootloaderConsole)) ctx.addIssue({ code: 'custom', path: ['bootloaderConsole'], message: `names no console of this profile (have: ${[...names].join(', ')})` });
    const shell = p.guest.shell;
    if (shell.kind !== 'none') {
      const c = p.consoles.find((x) => x.name === shell.console);
      if (!c) ctx.addIssue({ code: 'custom', path: ['guest', 'shell', 'console'], message: `names no console of this profile (have: ${[...names].join(', ')})` });
      else if (shell.kind === 'backdoor' && c.device !== 'virtconsole') ctx.addIssue({ code: 'custom', path: ['guest', 'shell', 'console'], message: 'the backdoor shell runs on a virtconsole; use kind "serial-login" on a serial console' });
    }
    if (shell.kind === 'serial-login' && !p.guest.login) ctx.addIssue({ code: 'custom', path: ['guest', 'login'], message: 'a serial-login shell needs guest.login { user, password }' });
    p.consoleChecks.add.forEach((c, i) => {
      try {
        new RegExp(c.pattern);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['consoleChecks', 'add', i, 'pattern'], message: `not a regular expression (${(err as Error).message}); write it as a string for new RegExp()` });
      }
    });
    if (p.firmware.kind === 'raspi' && p.qemu.diskBus !== 'sd') ctx.addIssue({ code: 'custom', path: ['qemu', 'diskBus'], message: 'raspi firmware reads an SD card: set diskBus to "sd"' });
  });

/** A validated machine profile. */
export type MachineProfile = z.output<typeof profileSchema>;
/** What a profile file may write: defaults filled in at load time. */
export type MachineProfileInput = z.input<typeof profileSchema>;

/** Declares a profile with editor completion; validation happens when it is loaded. */
export function defineProfile(profile: MachineProfileInput): MachineProfileInput {
  return profile;
}

type DeepPartial<T> = T extends readonly (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** A new profile from `base` with `patch` merged in (objects merge, arrays and scalars replace). */
export function extendProfile(base: MachineProfileInput, patch: DeepPartial<MachineProfileInput> & { name: string }): MachineProfileInput {
  return deepMerge(base, patch) as MachineProfileInput;
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (isPlainObject(a) && isPlainObject(b)) {
    // A different discriminant replaces a union member whole (firmware bios -> uefi).
    if ('kind' in b && 'kind' in a && a.kind !== b.kind) return b;
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = deepMerge(a[k], v);
    return out;
  }
  return b;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Why machines of `profile` can have no NIC (a network or a host link), or undefined when they can. QEMU's Raspberry
 * Pi model has no Ethernet of its own; its USB host controller (dwc2) never reports a device connected in QEMU 7.2, so
 * a USB NIC (usb-net) on it never comes up in the guest (tried: the kernel's dwc2 says "Not connected" throughout).
 */
export function nicUnsupported(profile: MachineProfile): string | undefined {
  if (profile.firmware.kind === 'raspi') return `QEMU's Raspberry Pi model (${profile.qemu.machine}) has no NIC fleetlab can attach (no Ethernet, and a USB NIC never connects on its USB controller); use an aarch64-uboot or aarch64-uefi machine for networked Arm tests`;
  return undefined;
}
