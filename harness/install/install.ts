// Install flows: a machine brought from nothing to an installed system booting from its own disk, each phase a
// timed step of the case (its own deadline, in the report). From an installer ISO (NixOS's manual install: partition,
// format, nixos-generate-config, nixos-install, then the CD ejected through QMP and the first boot from the disk),
// and from an SD-card image (written to the card through the Media protocol; the first boot grows the root).
// The flows drive what NixOS's own tools do; on the testbed, its stand-ins for them answer (machines/testbed).
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigurationError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import type { Bootloader, Booted } from '../nixos/nixos.ts';
import { need, type Machine } from '../protocols/machine.ts';
import { Deadline, raceDeadline, withDeadline } from '../time/deadline.ts';
import { parseSize } from './size.ts';
import { plain } from '../shell/plain.ts';

/** Runs one phase of a flow as a step with its own deadline: the scenario's ctx.step, or standaloneSteps outside one. */
export type StepRunner = <T>(name: string, fn: () => Promise<T>, opts: { timeout: number }) => Promise<T>;

/** Phases of an ISO install, in order; each is a step of the case. */
export const ISO_PHASES = ['boot installer', 'partition', 'format', 'install', 'eject', 'first boot'] as const;
export type IsoPhase = (typeof ISO_PHASES)[number];

/** Phases of an SD-image install. */
export const SD_PHASES = ['write card', 'first boot'] as const;
export type SdPhase = (typeof SD_PHASES)[number];

const ISO_DEFAULT_MS: Record<IsoPhase, number> = { 'boot installer': 300_000, partition: 60_000, format: 120_000, install: 600_000, eject: 30_000, 'first boot': 300_000 };
const SD_DEFAULT_MS: Record<SdPhase, number> = { 'write card': 60_000, 'first boot': 300_000 };

/** What fromIso() installs, and how. */
export interface IsoInstallOptions {
  /** The installer ISO (path; relative to the working directory). */
  iso: string;
  /** The disk installed onto: a blank disk of this size ("4G", "512M", "1.5GiB" or bytes). */
  target: { disk: string | number };
  /** The system to install: a toplevel in the installer's store (nixos-install --system). */
  system?: string;
  /** Or a flake output (nixos-install --flake .#host); needs an installer with Nix. */
  flake?: string;
  /**
   * Your own partition/format/install commands instead of NixOS's manual ones; they get the target disk's device
   * (/dev/vda) and must leave the system installed with the root mounted on /mnt.
   */
  steps?: (machine: Machine, disk: string) => Promise<void>;
  /** What the first boot must show. Default: the machine's hostname, generation 1 (of `system` when given). */
  expect?: { hostname?: string; generation?: number; bootloader?: Bootloader };
  /** Per-phase budgets in ms (scaled by nothing: they are deadlines). */
  timeouts?: Partial<Record<IsoPhase, number>>;
}

/** What an SD-image install writes, and what the first boot must show. */
export interface SdInstallOptions {
  /** The SD image (raw, as NixOS's sd-image builds after unpacking; path relative to the working directory). */
  image: string;
  /** The card's size ("1G", bytes); a power of two on QEMU's SD slot. Default: twice the image, rounded up to a power of two. */
  card?: string | number;
  expect?: { hostname?: string; generation?: number; bootloader?: Bootloader };
  timeouts?: Partial<Record<SdPhase, number>>;
}

/** What an install did and what its first boot showed. */
export interface InstallReport {
  /** The device installed onto, as the installer saw it. */
  disk?: string;
  booted: Booted;
  hostname: string;
  bootloader: Bootloader;
  /** The device the installed system's root is mounted from. */
  root: string;
  /** Firmware as the installed system sees it: bios, uefi-64, uefi-32. */
  firmware: string;
  /** Bytes of the root partition after the first boot (SD images grow it). */
  rootBytes: number;
  /** The installer's output (nixos-install and friends). */
  output: string;
}

/** Outside a scenario: each phase under its own deadline, inside any ambient one. */
export const standaloneSteps: StepRunner = async (name, fn, opts) => {
  const deadline = Deadline.after(opts.timeout, `install phase "${name}"`);
  const r = await raceDeadline(withDeadline(deadline, fn), deadline, undefined, `install phase "${name}" to finish`);
  if (r.timedOut) throw new TimeoutError('test-failure', { awaited: `install phase "${name}" to finish`, deadline });
  return r.value;
};

/**
 * Installs from an ISO: the machine (stopped: declare the scenario with start: 'manual') starts with a blank disk of
 * `target.disk` and the ISO in its CD-ROM drive, boots the installer to its shell (the test instrumentation's
 * backdoor, or the profile's serial login), partitions (GPT with an ESP on UEFI, MBR on a BIOS), formats (FAT32
 * "boot", ext4 "nixos"), mounts on /mnt, runs nixos-generate-config and nixos-install, ejects the ISO through QMP,
 * reboots into the disk and checks what came up. Bad options are configuration errors before anything boots.
 */
export async function fromIso(machine: Machine, o: IsoInstallOptions, run: StepRunner = standaloneSteps): Promise<InstallReport> {
  const where = `install.fromIso(${machine.name})`;
  const bad = badOption(where);
  const iso = existingFile(where, 'iso', o?.iso, 'the installer ISO to boot');
  const bytes = parseSize(o.target?.disk, `${where}: target.disk`);
  if (!o.steps && !o.system && !o.flake) throw bad('system', undefined, 'say what to install: system (a toplevel store path in the installer) or flake (a flake output), or give your own steps');
  if (o.system !== undefined && !/^\/nix\/store\/[0-9a-z]{32}-[^/\s]+$/.test(o.system)) throw bad('system', o.system, 'expected a toplevel store path, /nix/store/<hash>-nixos-system-<host>-<version>');
  if (o.flake !== undefined && !/^[^\s'"]+#[^\s'"]+$/.test(o.flake)) throw bad('flake', o.flake, 'expected a flake output reference, like .#myhost or github:org/fleet#myhost');
  const timeouts = phaseTimeouts(o.timeouts, ISO_DEFAULT_MS, where);
  const fw = machine.profile.firmware;
  if (fw.kind !== 'uefi' && fw.kind !== 'bios') throw bad('machine', machine.profile.name, `profile ${machine.profile.name} has ${fw.kind} firmware, which does not boot a CD-ROM; use a profile with bios or uefi firmware`);
  if (machine.profile.qemu.diskBus === 'sd') throw bad('machine', machine.profile.name, `profile ${machine.profile.name} has only an SD card slot; install it with install.sdImage`);
  const media = need(machine, 'media', where);
  if (machine.state !== 'stopped') throw bad('machine', machine.state, `${machine.name} is ${machine.state}; fromIso starts it itself with the ISO in: declare the scenario with start: 'manual'`);
  const output: string[] = [];

  await media.useMedia({ disk: { blank: bytes }, cdrom: iso });
  await run('boot installer', async () => {
    await machine.start();
    await machine.waitForShell();
  }, { timeout: timeouts['boot installer'] });

  const uefi = fw.kind === 'uefi';
  const disk = await run('partition', async () => {
    const dev = await targetDisk(machine, bytes);
    // NixOS manual, "Partitioning and formatting", with sfdisk: an ESP and the root on UEFI; /boot and the root on MBR.
    const table = uefi
      ? ['label: gpt', 'size=128MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP', 'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=nixos']
      : ['label: dos', 'size=128MiB, type=c, bootable', 'type=83'];
    output.push(await plain(machine).succeed(`printf '%s\\n' ${table.map((l) => `'${l}'`).join(' ')} | sfdisk --quiet --wipe always ${dev} 2>&1`));
    // The kernel reads the new table; the partitions' device nodes appear.
    await plain(machine).succeed(`i=0; while { [ ! -b ${part(dev, 1)} ] || [ ! -b ${part(dev, 2)} ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; [ -b ${part(dev, 2)} ]`);
    return dev;
  }, { timeout: timeouts.partition });

  await run('format', async () => {
    if (o.steps) return;
    output.push(await plain(machine).succeed(`mkfs.fat -F 32 -n boot ${part(disk, 1)} 2>&1 && mkfs.ext4 -q -F -L nixos ${part(disk, 2)} 2>&1 && mkdir -p /mnt && mount ${part(disk, 2)} /mnt && mkdir -p /mnt/boot && mount ${part(disk, 1)} /mnt/boot`));
  }, { timeout: timeouts.format });

  await run('install', async () => {
    if (o.steps) return o.steps(machine, disk);
    output.push(await plain(machine).succeed('nixos-generate-config --root /mnt 2>&1'));
    const what = o.system ? `--system ${o.system}` : `--flake '${o.flake}'`;
    const r = await plain(machine).execute(`nixos-install --root /mnt --no-root-passwd ${what} 2>&1; echo "exit $?"`);
    output.push(r.stdout);
    const code = /exit (\d+)\s*$/.exec(r.stdout)?.[1];
    if (code !== '0') throw new TestFailure(`${where}: nixos-install exited ${code ?? '?'}:\n${r.stdout.trim().split('\n').slice(-15).join('\n')}`);
    await plain(machine).succeed('sync; umount /mnt/boot 2>/dev/null; umount /mnt');
  }, { timeout: timeouts.install });

  await run('eject', () => media.ejectCdrom(), { timeout: timeouts.eject });

  const report = await run('first boot', async () => {
    const before = (await plain(machine).succeed('cat /proc/sys/kernel/random/boot_id')).trim();
    await machine.reboot();
    const r = await verifyInstalled(machine, { ...o.expect, generation: o.expect?.generation ?? 1 }, o.system, where);
    if (r.booted.bootId === before) throw new TestFailure(`${where}: the machine did not reboot (same boot id ${before})`);
    if (!r.root.startsWith(disk)) throw new TestFailure(`${where}: the installed system's root is ${r.root}, not on the disk installed onto (${disk})`);
    return r;
  }, { timeout: timeouts['first boot'] });
  return { ...report, disk, output: output.join('\n') };
}

/**
 * Installs from an SD-card image as NixOS's sd-image is installed: the image written to the machine's card (on a VM
 * a fresh overlay on its SD slot or disk, of the card's size; the machine must be off: start: 'manual'), then the
 * first boot, which must grow the root partition to the end of the card and boot generation 1 through extlinux.
 */
export async function sdImage(machine: Machine, o: SdInstallOptions, run: StepRunner = standaloneSteps): Promise<InstallReport> {
  const where = `install.sdImage(${machine.name})`;
  const bad = badOption(where);
  const image = existingFile(where, 'image', o?.image, 'the SD image to write');
  const timeouts = phaseTimeouts(o.timeouts, SD_DEFAULT_MS, where);
  const media = need(machine, 'media', where);
  if (machine.state !== 'stopped') throw bad('machine', machine.state, `${machine.name} is ${machine.state}; sdImage writes its card while it is off: declare the scenario with start: 'manual'`);
  const imageBytes = statSync(image).size;
  let card = o.card === undefined ? undefined : parseSize(o.card, `${where}: card`);
  if (card === undefined) for (card = 1024 * 1024; card < imageBytes * 2; card *= 2);
  if (card < imageBytes) throw bad('card', o.card, `the image is ${imageBytes} bytes; a card of ${card} bytes cannot hold it`);

  // On a VM a card of `card` bytes; a board's card is its own (written through its SD mux).
  await run('write card', () => media.useMedia({ disk: { image, format: 'raw', size: card } }), { timeout: timeouts['write card'] });
  const report = await run('first boot', async () => {
    await machine.start();
    await machine.waitForShell();
    // The first boot's resize runs before the shell answers (rcS); it leaves no /nix-path-registration behind.
    const r = await verifyInstalled(machine, { bootloader: 'extlinux', ...o.expect, generation: o.expect?.generation ?? 1 }, undefined, where);
    const pending = (await plain(machine).succeed('[ -e /nix-path-registration ] && echo pending || echo done')).trim();
    if (pending !== 'done') throw new TestFailure(`${where}: /nix-path-registration is still there: the first-boot resize did not finish`);
    const label = (await plain(machine).succeed(`e2label ${r.root} 2>/dev/null || true`)).trim();
    if (label !== 'NIXOS_SD') throw new TestFailure(`${where}: the root ${r.root} is labelled "${label}", not NIXOS_SD as NixOS's sd-image names it`);
    // Grown to the card (as the system sees it: a board's card is its own): less than 1 MiB left after the root.
    const { end, diskBytes } = await partitionEnd(machine, r.root);
    if (diskBytes - end > 1024 * 1024) throw new TestFailure(`${where}: the root partition ends at ${end} bytes of a ${diskBytes} byte card: it did not grow to fill the card`);
    // And the filesystem with it: ext4's blocks cover (nearly) the whole partition.
    const fsBytes = Number((await plain(machine).succeed("df -k / | awk 'NR == 2 { print $2 }'")).trim()) * 1024;
    if (fsBytes < r.rootBytes * 0.9) throw new TestFailure(`${where}: the root filesystem is ${fsBytes} bytes on a ${r.rootBytes} byte partition: resize2fs did not grow it`);
    return r;
  }, { timeout: timeouts['first boot'] });
  return { ...report, output: '' };
}

/** A configuration error about option `field` of the flow `where`. */
export function badOption(where: string) {
  return (field: string, value: unknown, msg: string) => new ConfigurationError(`${where}: ${field}: ${msg}`, { details: { field, value } });
}

/** The absolute path of option `field`, a file that must exist. */
function existingFile(where: string, field: string, value: unknown, what: string): string {
  if (typeof value !== 'string' || !value) throw badOption(where)(field, value, `give ${what} (a path)`);
  const path = resolve(value);
  if (!existsSync(path)) throw badOption(where)(field, value, `${path} does not exist`);
  return path;
}

/** The target's device: the one disk of exactly `bytes` bytes (QEMU gives the blank disk that size). */
async function targetDisk(machine: Machine, bytes: number): Promise<string> {
  const out = await plain(machine).succeed('for d in /sys/block/*; do echo "${d##*/} $(cat $d/size) $(cat $d/removable)"; done');
  const disks = out.trim().split('\n').map((l) => l.split(' ')).filter(([n, s, rm]) => Number(s) * 512 === bytes && rm === '0' && !/^(loop|ram|sr)/.test(n!));
  if (disks.length !== 1) throw new TestFailure(`${machine.name}: expected one disk of ${bytes} bytes to install onto, the installer sees ${disks.length}:\n${out.trim()}`);
  return `/dev/${disks[0]![0]}`;
}

/** Partition `n` of `disk` as Linux names it: vda1, nvme0n1p1, mmcblk0p1. */
function part(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

/** Where partition `dev` ends on its disk, and the disk's size, in bytes. */
async function partitionEnd(machine: Machine, dev: string): Promise<{ end: number; diskBytes: number }> {
  const name = dev.split('/').pop()!;
  const out = await plain(machine).succeed(`cat /sys/class/block/${name}/start /sys/class/block/${name}/size /sys/class/block/${name}/../size`);
  const [start, size, disk] = out.trim().split('\n').map(Number);
  return { end: (start! + size!) * 512, diskBytes: disk! * 512 };
}

/** What the installed system shows: generation, hostname, boot loader, root device, firmware. */
export async function verifyInstalled(machine: Machine, expect: { hostname?: string; generation: number; bootloader?: Bootloader }, system: string | undefined, where: string): Promise<Omit<InstallReport, 'output' | 'disk'>> {
  const booted = await machine.nixos.booted();
  if (booted.generation !== expect.generation) throw new TestFailure(`${where}: the first boot is generation ${booted.generation ?? 'none'} (${booted.toplevel}), expected ${expect.generation}`);
  if (system && booted.toplevel !== system) throw new TestFailure(`${where}: the first boot runs ${booted.toplevel}, not the system installed (${system})`);
  const hostname = (await plain(machine).succeed('hostname')).trim();
  const wantHost = expect.hostname ?? machine.name;
  if (machine.passesHostname || expect.hostname) {
    if (hostname !== wantHost) throw new TestFailure(`${where}: the installed system is called "${hostname}", expected "${wantHost}"`);
  }
  const bootloader = await machine.nixos.bootloader();
  if (expect.bootloader && bootloader !== expect.bootloader) throw new TestFailure(`${where}: /boot holds ${bootloader}, expected ${expect.bootloader}`);
  const facts = (await plain(machine).succeed("awk '$2 == \"/\" { d = $1 } END { print d }' /proc/mounts; if [ -d /sys/firmware/efi ]; then echo uefi-$(cat /sys/firmware/efi/fw_platform_size 2>/dev/null); else echo bios; fi")).trim().split('\n');
  const root = facts[0]!;
  const firmware = facts[1]!;
  const fw = machine.profile.firmware;
  const wantFw = fw.kind === 'uefi' ? `uefi-${fw.bits ?? 64}` : fw.kind === 'bios' ? 'bios' : undefined;
  if (wantFw && firmware !== wantFw) throw new TestFailure(`${where}: the installed system sees ${firmware} firmware, the profile has ${wantFw}`);
  const name = root.split('/').pop()!;
  const rootBytes = Number((await plain(machine).succeed(`cat /sys/class/block/${name}/size 2>/dev/null || echo 0`)).trim()) * 512;
  return { booted, hostname, bootloader, root, firmware, rootBytes };
}

/** The phases' budgets: `given` over `defaults`; an unknown phase or a budget that is no duration is a configuration error. */
export function phaseTimeouts<P extends string>(given: Partial<Record<P, number>> | undefined, defaults: Record<P, number>, where: string): Record<P, number> {
  for (const [k, v] of Object.entries(given ?? {})) {
    if (!(k in defaults)) throw new ConfigurationError(`${where}: timeouts: unknown phase "${k}"; phases are: ${Object.keys(defaults).join(', ')}`, { details: { field: 'timeouts', value: k } });
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigurationError(`${where}: timeouts.${k}: ${String(v)} is no duration; give milliseconds`, { details: { field: `timeouts.${k}`, value: v } });
  }
  return { ...defaults, ...(given ?? {}) } as Record<P, number>;
}
