// What a VM boots from: the profile's kernel or disk (as this machine's qcow2 overlays, rebased for a snapshot), the
// testbed image behind it, the media an install flow puts in (useMedia: a blank or image disk, an ISO in the CD-ROM
// drive), the Pi's firmware stand-in reading the SD card, and the UEFI variable store. One instance per QemuMachine,
// kept across its reboots and restarts; clear() removes its overlays.
import { existsSync } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import type { MediaSpec } from '../protocols/media.ts';
import { createOverlay, imageInfo } from './disk-overlay.ts';
import { runTool } from './host-packages.ts';
import type { MachineProfile } from './profile.ts';
import type { LaunchDisk } from './qemu-argv.ts';
import type { QmpClient } from './qmp.ts';
import { raspiFirmwareBoot } from './raspi-firmware.ts';
import { testbedImage, testbedSource, type BootDisk, type TestbedImage } from './testbed-source.ts';

/** A mebibyte. */
const MiB = 1024 * 1024;

/** What QEMU is given to boot. */
export interface ResolvedBoot {
  kernel?: string;
  initrd?: string;
  dtb?: string;
  append?: string;
  disks?: LaunchDisk[];
  fwCfgHostname?: string;
}

export class BootMedia {
  /** The testbed boot disk this machine boots, if any: its entries say which fleetlab.entry markers exist. */
  bootDisk: BootDisk | undefined;
  /** The testbed image this machine boots from its disk, if any (NixOS-shaped generations are built for it). */
  testbed: TestbedImage | undefined;
  /** The SSH user, key and host key of the testbed this machine boots, if it has them. */
  testbedSsh: { user: string; privateKey: string; hostKey: string } | undefined;
  /** The Pi firmware stand-in loads a boot loader (U-Boot), which reads the SD card again at each reset by itself. */
  raspiBootloader = false;
  /** This machine's UEFI variable store (a copy of the profile's), once it first started. */
  efiVars: string | undefined;
  /** The disks of the current boot: this machine's overlays, and an ISO. */
  disks: LaunchDisk[] | undefined;
  /** The sources of this machine's disk overlays, for snapshot keys. */
  diskSources: LaunchDisk[] = [];
  /** Media put in by use() (an install flow): they replace the profile's disk. */
  private mediaSpec: MediaSpec | undefined;
  /** Per machine instance: the disks' qcow2 overlays, kept across reboots and restarts. */
  private stateDir: string | undefined;
  private readonly m: { readonly name: string; readonly profile: MachineProfile; readonly logDir: string; note(line: string): void };

  constructor(machine: { readonly name: string; readonly profile: MachineProfile; readonly logDir: string; note(line: string): void }) {
    this.m = machine;
  }

  /** True once an install flow changed the media (no snapshot fits them). */
  get changed(): boolean {
    return this.mediaSpec !== undefined;
  }

  /** The EFI variable store, made from the profile's on first use: it persists across reboots and restarts. */
  async efiVarStore(): Promise<string | undefined> {
    const fw = this.m.profile.firmware;
    if (fw.kind !== 'uefi') return undefined;
    if (!this.efiVars) {
      this.efiVars = join(this.m.logDir, `${this.m.name}.efivars.fd`);
      await copyFile(fw.vars, this.efiVars);
    }
    return this.efiVars;
  }

  /** Removes the overlays (the machine is done). */
  async clear(): Promise<void> {
    if (this.stateDir) await removeTempDir(this.stateDir);
    this.stateDir = undefined;
    this.disks = undefined;
  }

  /** What QEMU boots: kernel files, or disks (as this machine's overlays) and the firmware finds the bootloader. */
  async resolve(runDir: string): Promise<ResolvedBoot> {
    const boot = this.m.profile.boot;
    const hostname = `fleetlab.hostname=${this.m.name}`;
    const log = (l: string) => this.m.note(l);
    if (boot.kind === 'testbed') {
      const img = await testbedImage(boot.image, this.m.profile.name, log);
      this.testbedSsh = img.ssh;
      return { kernel: img.kernel, initrd: img.initrd, append: `${boot.append} ${hostname}`.trim() };
    }
    if (boot.kind === 'kernel') {
      for (const [field, f] of [['boot.kernel', boot.kernel], ['boot.initrd', boot.initrd], ['boot.dtb', boot.dtb]] as const) {
        if (f && !existsSync(f)) throw new ConfigurationError(`Machine ${this.m.name} (profile ${this.m.profile.name}): ${field} ${f} does not exist.`, { details: { field, value: f } });
      }
      const disks = boot.image ? (this.disks ??= [await this.overlayOf(await this.userImage(boot.image))]) : undefined;
      return { kernel: boot.kernel, initrd: boot.initrd, dtb: boot.dtb, append: boot.append, disks, fwCfgHostname: this.m.name };
    }
    // A testbed disk profile says whose system (and SSH keys) the machine has, even when an install flow's media
    // (useMedia) replace the disk it would boot.
    const img = boot.kind === 'testbed-disk' ? await testbedImage(boot.image, this.m.profile.name, log) : undefined;
    if (img) {
      this.testbedSsh = img.ssh;
      this.testbed = img;
    }
    const profileDisk = async (): Promise<LaunchDisk> => {
      if (boot.kind !== 'testbed-disk') return this.userImage(boot.image, boot.format, boot.media);
      this.bootDisk = await testbedSource().bootDisk(img!, boot.layout, boot.append, { log });
      return { path: this.bootDisk.path, format: 'raw', media: 'disk' };
    };
    const disks = (this.disks ??= this.mediaSpec ? await this.mediaDisks(this.mediaSpec) : [await this.overlayOf(await profileDisk())]);
    if (this.m.profile.firmware.kind === 'raspi') return this.raspiBoot(disks, runDir, hostname);
    return { disks, fwCfgHostname: this.m.name };
  }

  /** The Pi's boot: fleetlab plays the firmware, reading config.txt and cmdline.txt from the SD card. */
  private async raspiBoot(disks: LaunchDisk[], runDir: string, hostname: string): Promise<{ kernel?: string; initrd?: string; dtb?: string; append?: string; disks: LaunchDisk[] }> {
    const fw = await raspiFirmwareBoot(disks[0]!.path, disks[0]!.format, runDir);
    this.m.note(`raspi firmware: kernel ${fw.config.kernel ?? 'kernel8.img'}, initramfs ${fw.config.initramfs ?? '-'}, device tree ${fw.dtb ? fw.dtb.split('/').pop() : '-'}`);
    // A boot loader as the "kernel" (U-Boot) reads the SD card itself at every reset; a Linux kernel does not.
    this.raspiBootloader = /u-boot/i.test(fw.config.kernel ?? '');
    return { kernel: fw.kernel, initrd: fw.initrd, dtb: fw.dtb, append: `${fw.append} ${hostname}`.trim(), disks };
  }

  /**
   * Media: what the machine boots from, changed while it is off (the Media protocol, as an SD mux or a USB stick is
   * on a board). `disk` replaces the profile's disk: `{ blank: bytes }` is an empty one, `{ image, size }` a copy of
   * an image (written through an overlay: the image itself is never written) on a disk of `size` bytes, as an image
   * written to a bigger card. `cdrom` puts an ISO in the CD-ROM drive, which boots after the (empty) disk.
   */
  use(media: MediaSpec): void {
    const where = `machine ${this.m.name} (profile ${this.m.profile.name})`;
    const sd = this.m.profile.qemu.diskBus === 'sd';
    const size = 'blank' in media.disk ? media.disk.blank : media.disk.size;
    if (size !== undefined && (!Number.isSafeInteger(size) || size < MiB || size % 512 !== 0)) throw new ConfigurationError(`${where}: disk size ${size} bytes: give a whole number of 512-byte sectors, at least 1 MiB`, { details: { field: 'disk.size', value: size } });
    if (sd && size !== undefined && (size & (size - 1)) !== 0) throw new ConfigurationError(`${where}: its SD card must be a power of two in size (QEMU's SD model); ${size} bytes is not`, { details: { field: 'disk.size', value: size } });
    if ('image' in media.disk && !existsSync(media.disk.image)) throw new ConfigurationError(`${where}: image ${media.disk.image} does not exist`, { details: { field: 'image', value: media.disk.image } });
    if (media.cdrom !== undefined) {
      if (sd) throw new ConfigurationError(`${where} has only an SD card slot; it has no CD-ROM drive for ${media.cdrom}`, { details: { field: 'cdrom', value: media.cdrom } });
      if (!existsSync(media.cdrom)) throw new ConfigurationError(`${where}: ISO ${media.cdrom} does not exist`, { details: { field: 'cdrom', value: media.cdrom } });
    }
    this.mediaSpec = { ...media, disk: { ...media.disk } };
    this.disks = undefined;
    this.diskSources = [];
  }

  /** Takes the ISO out of the CD-ROM drive (QMP eject, forced past the guest's tray lock): the next boot is from the disk. */
  async ejectCdrom(qmp: (what: string) => QmpClient): Promise<void> {
    const k = (this.disks ?? []).findIndex((d) => d.media === 'cdrom');
    if (k < 0) throw new ConfigurationError(`machine ${this.m.name} has no CD-ROM in its drive to eject`);
    await qmp('eject the CD-ROM').execute('eject', { id: `cd${k}-dev`, force: true });
    this.m.note(`CD-ROM ejected (${this.disks![k]!.path})`);
    // A QEMU started again (crash(), start()) comes up without it too.
    this.disks = this.disks!.filter((d) => d.media !== 'cdrom');
    if (this.mediaSpec) this.mediaSpec = { ...this.mediaSpec, cdrom: undefined };
  }

  /** The disks useMedia() asked for: this machine's overlay (blank, or on the image) and the CD-ROM. */
  private async mediaDisks(m: MediaSpec): Promise<LaunchDisk[]> {
    let disk: LaunchDisk;
    if ('blank' in m.disk) {
      const overlay = await this.overlayPath();
      await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', overlay, String(m.disk.blank)], { timeout: 30_000 });
      this.m.note(`disk: blank, ${Math.round(m.disk.blank / MiB)} MiB (${overlay})`);
      disk = { path: overlay, format: 'qcow2', media: 'disk' };
    } else {
      disk = await this.overlayOf(await this.userImage(m.disk.image, m.disk.format, 'disk'), m.disk.size);
    }
    return m.cdrom ? [disk, { path: resolve(m.cdrom), format: 'raw', media: 'cdrom' }] : [disk];
  }

  /** A disk or ISO the user names, checked and with its format found. */
  private async userImage(image: string, format?: string, media?: 'disk' | 'cdrom'): Promise<LaunchDisk> {
    const path = resolve(image);
    if (!existsSync(path)) throw new ConfigurationError(`Machine ${this.m.name} (profile ${this.m.profile.name}): boot.image ${image} does not exist.`, { details: { field: 'boot.image', value: image } });
    return { path, format: format ?? (await imageInfo(path, 'boot.image')).format, media: media ?? (/\.iso$/i.test(path) ? 'cdrom' : 'disk') };
  }

  /** This machine's disk overlays made anew on `bases` (in disk order), and its EFI variable store copied from `efiVars`. */
  async rebaseDisks(bases: Array<{ path: string; format: string }>, efiVars: string | undefined): Promise<void> {
    for (const [k, d] of (this.disks ?? []).filter((x) => x.media === 'disk').entries()) {
      await rm(d.path, { force: true });
      await createOverlay(bases[k]!.path, bases[k]!.format, d.path);
    }
    if (efiVars && this.efiVars) await copyFile(efiVars, this.efiVars);
  }

  /** A disk as this machine sees it: a qcow2 overlay of the image, of `size` bytes if given (ISOs attach read-only as they are). */
  private async overlayOf(source: LaunchDisk, size?: number): Promise<LaunchDisk> {
    if (source.media === 'cdrom') {
      if (this.m.profile.qemu.diskBus === 'sd') throw new ConfigurationError(`Machine ${this.m.name} (profile ${this.m.profile.name}) has only an SD card slot; it cannot boot the ISO ${source.path}.`, { details: { field: 'boot.image', value: source.path } });
      return source;
    }
    const overlay = await this.overlayPath();
    this.diskSources.push(source);
    await createOverlay(source.path, source.format, overlay, { size, powerOfTwo: this.m.profile.qemu.diskBus === 'sd' });
    this.m.note(`disk: overlay ${overlay} on ${source.path} (${source.format})${size ? `, a ${Math.round(size / MiB)} MiB disk` : ''}; the image itself is not written`);
    return { path: overlay, format: 'qcow2', media: 'disk' };
  }

  /** Where this machine's disk overlay lives (in its state dir, made on first use). */
  private async overlayPath(): Promise<string> {
    this.stateDir ??= await makeTempDir(`fleetlab-state-${this.m.name.slice(0, 20)}-`);
    return join(this.stateDir, `${this.m.name}.disk0.qcow2`);
  }
}
