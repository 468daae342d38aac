// Writes a disk image to the card's block device on a lab host, over the host's SSH connection: each range the
// image's bmap maps (else the whole image) is streamed into `dd` on the host at its offset, never more than the bmap
// says, then synced; each range is then read back on the host (`dd | sha256sum`) and compared with the image's own.
// The bmap's checksums are checked while reading the image, as the local writer does (image-writer.ts).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { shellQuote } from '../../harness/shell/guest-helper.ts';
import type { LabHost } from '../lab-host.ts';
import { plannedRanges, type WriteReport } from './image-writer.ts';

/** A range's write may take this long (a slow card at 10 MB/s: 1 GiB in under two minutes). */
const RANGE_MS = 15 * 60_000;

export async function writeImageOnHost(image: string, device: string, host: LabHost, board: string): Promise<WriteReport> {
  const { bmap, bmapFile, ranges } = await plannedRanges(image);
  // dd's unit: the bmap's block size (ranges start on its blocks), else 1 MiB for a whole image from 0.
  const bs = bmap?.blockSize ?? 1024 * 1024;
  const dev = shellQuote(device);
  const sums: Array<[number, number, string]> = [];
  let bytes = 0;
  for (const r of ranges) {
    const check = createHash(bmap?.checksumType === 'sha1' ? 'sha1' : 'sha256');
    const all = createHash('sha256');
    const what = `writing ${image} to ${device} for board ${board} (bytes ${r.start}-${r.end})`;
    const w = await host.exec(`dd of=${dev} bs=${bs} seek=${r.start / bs} conv=notrunc,fsync status=none`, {
      timeoutMs: RANGE_MS,
      what,
      // Hashed as it goes to dd: a Transform, which passes nothing on until the channel reads it.
      input: () =>
        createReadStream(image, { start: r.start, end: r.end - 1 }).pipe(
          new Transform({
            transform(chunk: Buffer, _enc, done) {
              check.update(chunk);
              all.update(chunk);
              done(null, chunk);
            },
          }),
        ),
    });
    if (w.exitCode !== 0) throw new InfrastructureError(`${host.describe}: ${what}: dd exited ${w.exitCode}: ${w.stderr.trim().slice(0, 300)}`);
    if (r.chksum && check.digest('hex') !== r.chksum) throw new InfrastructureError(`${image}: bytes ${r.start}-${r.end} do not match their checksum in ${bmapFile}: the image or its bmap is damaged`);
    sums.push([r.start, r.end, all.digest('hex')]);
    bytes += r.end - r.start;
  }
  const synced = await host.exec('sync', { timeoutMs: 60_000, what: `syncing ${device}` });
  if (synced.exitCode !== 0) throw new InfrastructureError(`${host.describe}: syncing ${device} for board ${board}: sync exited ${synced.exitCode}: ${synced.stderr.trim().slice(0, 300)}`);
  // Read back on the host what should now be on the card.
  for (const [start, end, want] of sums) {
    const blocks = Math.ceil((end - start) / bs);
    const cmd = `dd if=${dev} bs=${bs} skip=${start / bs} count=${blocks} status=none | head -c ${end - start} | sha256sum`;
    const r = await host.exec(cmd, { timeoutMs: RANGE_MS, what: `reading back ${device} for board ${board}` });
    const got = r.stdout.trim().split(/\s+/)[0];
    if (r.exitCode !== 0 || got !== want) throw new InfrastructureError(`${host.describe}: writing ${image} to ${device}: bytes ${start}-${end} read back ${r.exitCode !== 0 ? `failed (${r.stderr.trim().slice(0, 200)})` : 'differ from the image'} (a failing card or reader?)`);
  }
  return { bytesWritten: bytes, ranges: sums.length, bmap: !!bmap };
}
