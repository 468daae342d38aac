// Products fleetlab builds once and keeps (testbed images, boot disks): one directory per key with a manifest, built
// under a lock so parallel workers build it once, and an index from cheap local inputs to the last product, so apt
// (about 1.5 s per apt-cache call) is not asked on every machine start.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withLock } from './file-lock.ts';

/**
 * The product in `dir` (its manifest.json); if there is none (or `rebuild`), `produce` builds it into `out` (with
 * `work` for scratch), its return value becomes the manifest, and `out` replaces `dir` in one rename.
 */
export async function buildOnce<T>(dir: string, rebuild: boolean, produce: (out: string, work: string) => Promise<T>): Promise<T> {
  const manifest = join(dir, 'manifest.json');
  const cached = async () => (!rebuild && existsSync(manifest) ? (JSON.parse(await readFile(manifest, 'utf8')) as T) : undefined);
  return (
    (await cached()) ??
    withLock(`${dir}.lock`, async () => {
      const again = await cached();
      if (again) return again;
      const work = await mkdtemp(`${dir}.build-`);
      try {
        const out = join(work, 'out');
        await mkdir(out);
        const product = await produce(out, work);
        await writeFile(join(out, 'manifest.json'), JSON.stringify(product, null, 2) + '\n');
        await rm(dir, { recursive: true, force: true });
        await rename(out, dir);
        return product;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    })
  );
}

/** Products this process has found or made, by index file and inputs. */
const memo = new Map<string, unknown>();

/**
 * The product last made for `inputs` (a hash of the local inputs: recipe, builder source, apt lists' age) while
 * `stillThere` says it is in the cache; otherwise `make()`, remembered in `indexFile` and in this process.
 */
export async function viaIndex<T>(indexFile: string, inputs: string, stillThere: (product: T) => boolean, make: () => Promise<T>, rebuild = false): Promise<T> {
  const key = `${indexFile}\0${inputs}`;
  if (!rebuild) {
    const known = (memo.get(key) as T | undefined) ?? (await readIndex<T>(indexFile, inputs));
    if (known !== undefined && stillThere(known)) {
      memo.set(key, known);
      return known;
    }
  }
  const product = await make();
  memo.set(key, product);
  await writeFile(indexFile, JSON.stringify({ inputs, product }, null, 2) + '\n');
  return product;
}

/** True when viaIndex(indexFile, inputs, stillThere, …) would answer from the cache, without making anything. */
export async function inIndex<T>(indexFile: string, inputs: string, stillThere: (product: T) => boolean): Promise<boolean> {
  const known = (memo.get(`${indexFile}\0${inputs}`) as T | undefined) ?? (await readIndex<T>(indexFile, inputs));
  return known !== undefined && stillThere(known);
}

async function readIndex<T>(indexFile: string, inputs: string): Promise<T | undefined> {
  try {
    const idx = JSON.parse(await readFile(indexFile, 'utf8')) as { inputs: string; product: T };
    return idx.inputs === inputs ? idx.product : undefined;
  } catch {
    return undefined;
  }
}
