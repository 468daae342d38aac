// Plays the Raspberry Pi's VideoCore firmware for QEMU, which has none: reads config.txt and cmdline.txt from the
// SD card's first FAT partition and hands QEMU the kernel, initramfs and device tree they name.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { readSectors } from './disk-overlay.ts';
import { runTool } from './host-packages.ts';

/** What the firmware would boot. */
export interface RaspiBoot {
  kernel: string;
  initrd?: string;
  dtb?: string;
  append: string;
  /** The config.txt settings that applied (the [all] and [pi3] sections). */
  config: Record<string, string>;
}

const FAT_TYPES = new Set([0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e]);
/** Device trees the Pi 3B firmware looks for when config.txt names none: Raspberry Pi's and mainline's names. */
const DEFAULT_DTBS = ['bcm2710-rpi-3-b.dtb', 'bcm2837-rpi-3-b.dtb'];

/** Reads the firmware partition of `image` (the machine's SD overlay) into `workDir` and says what to boot. */
export async function raspiFirmwareBoot(image: string, format: string, workDir: string): Promise<RaspiBoot> {
  const mbr = join(workDir, 'sd-mbr.bin');
  await readSectors(image, format, 0, 1, mbr);
  const sector = await readFile(mbr);
  if (sector.readUInt16LE(510) !== 0xaa55) throw new ConfigurationError(`SD card ${image} has no MBR partition table; a Raspberry Pi boots from a FAT partition on an MBR disk.`);
  let part: { start: number; sectors: number } | undefined;
  for (let k = 0; k < 4 && !part; k++) {
    const e = 446 + k * 16;
    if (FAT_TYPES.has(sector[e + 4]!)) part = { start: sector.readUInt32LE(e + 8), sectors: sector.readUInt32LE(e + 12) };
  }
  if (!part) throw new ConfigurationError(`SD card ${image} has no FAT partition among its primary partitions; the Pi's firmware needs one with config.txt and the kernel.`);
  const fat = join(workDir, 'sd-firmware.fat');
  await readSectors(image, format, part.start, part.sectors, fat);

  const files = new Set((await mtools('mdir', ['-b', '-i', fat, '::'])).split('\n').map((l) => l.trim().replace(/^::\//, '')).filter(Boolean));
  const config = parseConfigTxt(files.has('config.txt') ? await mtools('mtype', ['-i', fat, '::config.txt']) : '');
  const kernel = config.kernel ?? (config.arm_64bit === '1' ? 'kernel8.img' : 'kernel7.img');
  const dtbName = config.device_tree ?? DEFAULT_DTBS.find((d) => files.has(d));
  const cmdlineFile = config.cmdline ?? 'cmdline.txt';
  if (!files.has(kernel)) throw new ConfigurationError(`SD card ${image}: the firmware partition has no ${kernel} (config.txt kernel=${config.kernel ?? '(unset)'}); files: ${[...files].join(', ')}`);
  const out: RaspiBoot = { kernel: await extract(fat, kernel, workDir), append: '', config };
  if (config.initramfs) out.initrd = await extract(fat, config.initramfs, workDir);
  if (dtbName && files.has(dtbName)) out.dtb = await extract(fat, dtbName, workDir);
  if (files.has(cmdlineFile)) out.append = (await mtools('mtype', ['-i', fat, `::${cmdlineFile}`])).replace(/\s+/g, ' ').trim();
  return out;
}

/** config.txt settings of the [all] and [pi3] sections; "initramfs NAME followkernel" becomes initramfs=NAME. */
export function parseConfigTxt(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let active = true;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      active = section[1] === 'all' || section[1] === 'pi3';
      continue;
    }
    if (!active) continue;
    const initramfs = /^initramfs\s+(\S+)/.exec(line);
    if (initramfs) out.initramfs = initramfs[1]!;
    else if (line.includes('=')) out[line.slice(0, line.indexOf('=')).trim()] = line.slice(line.indexOf('=') + 1).trim();
  }
  return out;
}

async function extract(fat: string, name: string, workDir: string): Promise<string> {
  const dest = join(workDir, `sd-${name.replace(/[^A-Za-z0-9._-]/g, '_')}`);
  await mtools('mcopy', ['-o', '-i', fat, `::${name}`, dest]);
  return dest;
}

function mtools(tool: string, args: string[]): Promise<string> {
  return runTool(tool, args, { timeout: 60_000, env: { MTOOLS_SKIP_CHECK: '1' }, purpose: 'reading a Raspberry Pi SD card', failAs: 'configuration' });
}
