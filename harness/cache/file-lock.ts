// An exclusive lock file between processes (parallel test workers building the same image), stale when its owner died.
import { open, readFile, rm, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import { pidAlive } from '../process/pid-alive.ts';
import { Deadline, pollUntil } from '../time/deadline.ts';

/** Runs `fn` holding an exclusive lock file, so parallel workers build an image once. */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const deadline = Deadline.after(15 * 60_000, `lock ${path}`, { unscaled: true });
  const got = await pollUntil(
    async () => {
      try {
        const fh = await open(path, 'wx');
        await fh.writeFile(String(process.pid));
        await fh.close();
        return true;
      } catch {
        // A lock whose owner died is stale.
        const owner = Number(await readFile(path, 'utf8').catch(() => ''));
        if (owner && !pidAlive(owner)) await rm(path, { force: true });
        return undefined;
      }
    },
    { deadline, intervalMs: 500 },
  );
  if (got.timedOut) throw new InfrastructureError(`waited ${deadline.describe()} for another process to finish building; remove ${path} if no build runs.`);
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}
