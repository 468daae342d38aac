// Guest RAM that clones of one snapshot share. The machine that saves runs with its RAM in a memfd, shared
// (qemu-argv.ts's `ram: memfd`); while it is stopped the migration stream leaves that RAM out (QEMU's x-ignore-shared
// capability) and its pages are copied into the snapshot's RAM file, holes where they are zero. Machines restored from
// the snapshot map that file private (`ram: file`): the page cache holds its pages once for all of them, and each
// clone owns only the pages it writes. Measured in QEMU-NOTES / docs/performance.md (PSS per restored node).
import { open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import type { QmpClient } from './qmp.ts';

/** /proc's path to the memfd holding the RAM of QEMU process `pid` (memory-backend-memfd names its memfd so). */
export async function ramMemfd(pid: number): Promise<string> {
  const dir = `/proc/${pid}/fd`;
  const found: string[] = [];
  for (const fd of await readdir(dir)) {
    const target = await readlink(join(dir, fd)).catch(() => '');
    if (target.startsWith('/memfd:memory-backend-memfd')) found.push(join(dir, fd));
  }
  if (found.length !== 1) throw new InfrastructureError(`QEMU process ${pid} has ${found.length} RAM memfds (memory-backend-memfd), not one: its RAM cannot be saved as a file`);
  return found[0]!;
}

/** Copies `src` (a memfd's RAM) to a new file `dst` of the same size, leaving holes where a chunk is all zeros. */
export async function copySparse(src: string, dst: string): Promise<void> {
  const CHUNK = 1 << 20;
  const from = await open(src, 'r');
  const to = await open(dst, 'wx');
  try {
    const size = (await from.stat()).size;
    const buf = Buffer.alloc(CHUNK);
    const zeros = Buffer.alloc(CHUNK);
    for (let off = 0; off < size; off += CHUNK) {
      const { bytesRead } = await from.read(buf, 0, Math.min(CHUNK, size - off), off);
      const chunk = buf.subarray(0, bytesRead);
      if (!chunk.equals(zeros.subarray(0, bytesRead))) await to.write(chunk, 0, bytesRead, off);
    }
    await to.truncate(size);
  } finally {
    await Promise.all([from.close(), to.close()]);
  }
}

/** Turns QEMU's x-ignore-shared migration capability on or off: on, a stream leaves shared RAM out (saving) or expects it left out (restoring). */
export async function ignoreSharedRam(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] });
}
