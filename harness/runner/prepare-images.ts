// Before a run's cases start, every testbed image its machines boot (and the boot disks of its VMs) is built or found
// in the cache: several images at once where the host has the cores, a line for each step of a build, so a case's
// "start" is its machines starting, not a build of several minutes with nothing said.
import { cpus } from 'node:os';
import type { BootLayout, MachineProfile } from '../qemu/profile.ts';
import { registeredTestbedSource } from '../qemu/testbed-source.ts';
import { formatMs, now } from '../time/deadline.ts';
import type { PlannedCase } from './plan.ts';

/** One testbed image and the boot disks of it that the run's VMs boot. */
export interface ImageTask {
  image: string;
  /** The profiles that boot it, for the lines. */
  profiles: string[];
  disks: Array<{ layout: BootLayout; append: string }>;
}

/** What the planned cases boot from the testbed: one task per image (boards need the image alone: their card is theirs). */
export function imageTasks(cases: PlannedCase[]): ImageTask[] {
  const tasks = new Map<string, ImageTask>();
  const add = (p: MachineProfile, onBoard: boolean) => {
    const boot = p.boot;
    if (boot.kind !== 'testbed' && boot.kind !== 'testbed-disk') return;
    let t = tasks.get(boot.image);
    if (!t) tasks.set(boot.image, (t = { image: boot.image, profiles: [], disks: [] }));
    if (!t.profiles.includes(p.name)) t.profiles.push(p.name);
    if (boot.kind === 'testbed-disk' && !onBoard && !t.disks.some((d) => d.layout === boot.layout && d.append === boot.append)) t.disks.push({ layout: boot.layout, append: boot.append });
  };
  for (const c of cases) for (const [role, p] of Object.entries(c.profiles)) add(p, !!c.boards?.[role]);
  return [...tasks.values()];
}

export interface PrepareOptions {
  /** Where the lines go (the console). */
  write: (line: string) => void;
  /** Builds at once; default: the host's cores, at most the number of images. */
  parallel?: number;
  /** How often a long step says it is still going (ms). */
  tickMs?: number;
}

/** What prepareImages did: the images it built (with their time) and those the cache had. */
export interface PrepareReport {
  built: Array<{ image: string; ms: number }>;
  cached: string[];
}

/**
 * Builds what `cases` boot from the testbed and is not cached yet, saying first which images are missing, then a
 * line per build step ("image x86_64: step 3/6: …"), a "still building" line every `tickMs` in a long step, and how
 * long each took. Says nothing when everything is cached. Images a profile names that are no recipe are left to the
 * machine's start, whose configuration error names the profile's field.
 */
export async function prepareImages(cases: PlannedCase[], opts: PrepareOptions): Promise<PrepareReport> {
  const report: PrepareReport = { built: [], cached: [] };
  const source = registeredTestbedSource();
  if (!source) return report;
  const tasks = imageTasks(cases).filter((t) => source.names().includes(t.image));
  const missing: ImageTask[] = [];
  for (const t of tasks) {
    if (await source.cached(t.image)) report.cached.push(t.image);
    else missing.push(t);
  }
  const parallel = Math.max(1, Math.min(opts.parallel ?? cpus().length, missing.length || 1));
  if (missing.length) opts.write(`images: building ${missing.map((t) => `${t.image} (for ${t.profiles.join(', ')})`).join(', ')}, ${parallel} at a time; cached: ${report.cached.join(', ') || 'none'}`);
  const t0 = now();
  let next = 0;
  // The cached images' boot disks may still be missing: they are built (and said) like the rest, after the images.
  const queue = [...missing, ...tasks.filter((t) => !missing.includes(t))];
  const worker = async () => {
    while (next < queue.length) {
      const t = queue[next++]!;
      const started = now();
      let said = false;
      let last = '';
      const say = (line: string) => {
        said = true;
        last = line;
        opts.write(`image ${t.image}: ${line}`);
      };
      const tick = setInterval(() => said && opts.write(`image ${t.image}: still at "${last}", ${formatMs(now() - started)} so far`), opts.tickMs ?? 30_000);
      tick.unref();
      try {
        const img = await source.image(t.image, { log: say });
        for (const d of t.disks) await source.bootDisk(img, d.layout, d.append, { log: say });
      } finally {
        clearInterval(tick);
      }
      if (said) {
        report.built.push({ image: t.image, ms: now() - started });
        opts.write(`image ${t.image}: ready in ${formatMs(now() - started)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  if (report.built.length) opts.write(`images: ${report.built.length} built in ${formatMs(now() - t0)}; the cases start now`);
  return report;
}
