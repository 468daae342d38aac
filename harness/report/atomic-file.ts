// A report file rewritten whole and atomically (temp file, then rename), one write at a time.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Serialises rewrites of one file; a failed write is reported and does not stop later ones. */
export class AtomicFile {
  readonly path: string;
  private queue: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  /** Queues a rewrite with the content `render` returns when its turn comes (so the newest state is written). */
  write(render: () => Promise<string> | string): Promise<void> {
    this.queue = this.queue.then(async () => {
      try {
        const content = await render();
        await mkdir(dirname(this.path), { recursive: true });
        const tmp = `${this.path}.tmp-${process.pid}`;
        await writeFile(tmp, content);
        await rename(tmp, this.path);
      } catch (err) {
        process.stderr.write(`fleetlab: could not write ${this.path}: ${err}\n`);
      }
    });
    return this.queue;
  }
}
