// Writes a disk image to a card's block device (or a file standing for one), then reads the written ranges back and
// compares checksums. With a bmap file beside the image (<image>.bmap, bmaptool's XML: BlockSize, and BlockMap's
// <Range chksum="…">first-last</Range> blocks), only the mapped blocks are written and each range is checked against
// its checksum while reading the image; without one, every block is written, except that all-zero blocks are skipped
// when the target is a file this call creates (sparse, it reads them back as zeros). Then fsync: the mux may
// cut the card's power as soon as this returns.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { XMLParser } from 'fast-xml-parser';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';

const CHUNK = 4 * 1024 * 1024;

export interface WriteReport {
  bytesWritten: number;
  ranges: number;
  bmap: boolean;
}

export interface Bmap {
  blockSize: number;
  imageSize: number;
  checksumType: string;
  ranges: Array<{ first: number; last: number; chksum?: string }>;
}

/** Parses bmaptool's XML (versions 1.x and 2.x). */
export function parseBmap(xml: string, file = 'bmap'): Bmap {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', isArray: (name) => name === 'Range' }).parse(xml) as { bmap?: Record<string, unknown> };
  const b = doc.bmap;
  if (!b) throw new ConfigurationError(`${file} is not a bmap file (no <bmap> element)`);
  const blockSize = Number(String(b.BlockSize).trim());
  const imageSize = Number(String(b.ImageSize).trim());
  if (!(blockSize > 0) || !(imageSize > 0)) throw new ConfigurationError(`${file}: BlockSize or ImageSize missing`);
  const raw = ((b.BlockMap as { Range?: unknown[] } | undefined)?.Range ?? []) as Array<string | { '#text': string; '@_chksum'?: string; '@_sha1'?: string }>;
  const ranges = raw.map((r) => {
    const text = typeof r === 'string' ? r : String(r['#text']);
    const m = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(text);
    if (!m) throw new ConfigurationError(`${file}: a <Range> reads "${text}"`);
    const chksum = typeof r === 'string' ? undefined : (r['@_chksum'] ?? r['@_sha1']);
    return { first: Number(m[1]), last: Number(m[2] ?? m[1]), chksum };
  });
  const checksumType = String(b.ChecksumType ?? (raw.some((r) => typeof r !== 'string' && r['@_sha1']) ? 'sha1' : 'sha256')).trim();
  return { blockSize, imageSize, checksumType, ranges };
}

/** The byte ranges of `image` to write: its bmap's mapped blocks (with their checksums), else the whole image. */
export async function plannedRanges(image: string): Promise<{ bmap?: Bmap; bmapFile?: string; imageSize: number; ranges: Array<{ start: number; end: number; chksum?: string }> }> {
  const bmapFile = [`${image}.bmap`, image.replace(/\.img$/, '.bmap')].find((f) => existsSync(f));
  const bmap = bmapFile ? parseBmap(await readFile(bmapFile, 'utf8'), bmapFile) : undefined;
  const imageSize = (await stat(image)).size;
  const ranges = bmap ? bmap.ranges.map((r) => ({ start: r.first * bmap.blockSize, end: Math.min((r.last + 1) * bmap.blockSize, imageSize), chksum: r.chksum })) : [{ start: 0, end: imageSize }];
  return { bmap, bmapFile, imageSize, ranges };
}

/** Writes `image` to `device`, verifies it by reading back, and syncs. */
export async function writeImage(image: string, device: string): Promise<WriteReport> {
  const { bmap, bmapFile, imageSize, ranges } = await plannedRanges(image);
  // A card (or a file standing for one) keeps what is not written; only a file made here starts empty and sparse.
  const fresh = !(await stat(device).catch(() => undefined));
  const src = await open(image, 'r');
  const dst = await open(device, fresh ? 'w+' : 'r+');
  const written: Array<[number, number, string]> = [];
  let bytes = 0;
  try {
    if (fresh) await dst.truncate(imageSize);
    for (const r of ranges) {
      const h = createHash(bmap?.checksumType === 'sha1' ? 'sha1' : 'sha256');
      const all = createHash('sha256');
      for (let off = r.start; off < r.end; off += CHUNK) {
        const len = Math.min(CHUNK, r.end - off);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await src.read(buf, 0, len, off);
        if (bytesRead !== len) throw new InfrastructureError(`${image}: short read at ${off} (the image is smaller than its bmap says?)`);
        h.update(buf);
        all.update(buf);
        if (!bmap && fresh && buf.every((x) => x === 0)) continue;
        await dst.write(buf, 0, len, off);
        bytes += len;
      }
      if (r.chksum && h.digest('hex') !== r.chksum) throw new InfrastructureError(`${image}: blocks ${r.start}-${r.end} do not match their checksum in ${bmapFile}: the image or its bmap is damaged`);
      written.push([r.start, r.end, all.digest('hex')]);
    }
    await dst.sync();
    // Read back what should now be on the card.
    for (const [start, end, want] of written) {
      const h = createHash('sha256');
      for (let off = start; off < end; off += CHUNK) {
        const len = Math.min(CHUNK, end - off);
        const buf = Buffer.alloc(len);
        await dst.read(buf, 0, len, off);
        h.update(buf);
      }
      if (h.digest('hex') !== want) throw new InfrastructureError(`writing ${image} to ${device}: bytes ${start}-${end} read back differ from the image (a failing card or reader?)`);
    }
  } finally {
    await src.close();
    await dst.close();
  }
  return { bytesWritten: bytes, ranges: written.length, bmap: !!bmap };
}
