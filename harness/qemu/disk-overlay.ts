// The user's or the testbed's disk images, booted through a per-machine qcow2 overlay so the original is never written.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { runTool } from './host-packages.ts';

/** What qemu-img says of an image. */
export interface ImageInfo {
  format: string;
  virtualSize: number;
}

/** Format and size of `path` (qemu-img info); a file QEMU cannot read is a configuration error naming it. */
export async function imageInfo(path: string, field = 'image'): Promise<ImageInfo> {
  const out = await runTool('qemu-img', ['info', '--output=json', path], {
    timeout: 30_000,
    failure: `${field} ${path} is not an image QEMU can read`,
    failAs: 'configuration',
    details: { field, value: path },
  });
  const info = JSON.parse(out) as { format: string; 'virtual-size': number };
  return { format: info.format, virtualSize: info['virtual-size'] };
}

/**
 * Creates `dest`, a qcow2 overlay backed by `base` (absolute path): writes land in the overlay.
 * `powerOfTwo` grows the overlay's size to the next power of two, as QEMU's SD card model demands.
 */
export async function createOverlay(base: string, format: string, dest: string, opts: { powerOfTwo?: boolean; size?: number } = {}): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-F', format, '-b', base, dest];
  if (opts.powerOfTwo || opts.size !== undefined) {
    const { virtualSize } = await imageInfo(base);
    if (opts.size !== undefined && opts.size < virtualSize) throw new ConfigurationError(`image ${base} (${virtualSize} bytes) does not fit on a disk of ${opts.size} bytes`, { details: { field: 'size', value: opts.size } });
    let size = opts.size ?? 1;
    if (opts.size === undefined) while (size < virtualSize) size *= 2;
    if (size !== virtualSize) args.push(String(size));
  }
  await runTool('qemu-img', args, { timeout: 30_000 });
}

/** Copies `count` 512-byte sectors from `skip` of an image (any format QEMU reads) into a raw file. */
export async function readSectors(image: string, format: string, skip: number, count: number, out: string): Promise<void> {
  const args = ['dd', '-f', format, '-O', 'raw', 'bs=512', `skip=${skip}`, `count=${count}`, `if=${image}`, `of=${out}`];
  await runTool('qemu-img', args, { timeout: 60_000 });
}
