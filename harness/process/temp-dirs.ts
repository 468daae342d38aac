// Temporary directories of a run (QEMU's sockets, disk overlays): removed when their owner is done, and all at once
// when the process exits, even through process.exit() on SIGINT/SIGTERM, so no overlay is left in /tmp.
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Set<string>();
let hooked = false;

/** A fresh 0700 directory under the system temp dir, removed at process exit if not before. */
export async function makeTempDir(prefix: string): Promise<string> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const d of live) rmSync(d, { recursive: true, force: true });
    });
  }
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o700);
  live.add(dir);
  return dir;
}

/** Removes a directory made by makeTempDir. */
export async function removeTempDir(dir: string): Promise<void> {
  live.delete(dir);
  await rm(dir, { recursive: true, force: true });
}
