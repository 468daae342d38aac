// Debian packages for testbed images: apt's candidate version, downloaded once per version into the cache.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';

/** A Debian package pinned to the version apt offers now. */
export interface DebPackage {
  name: string;
  version: string;
  arch: string;
  /** The package's own Architecture: `all` for architecture-independent packages (its .deb's file name says so). */
  fileArch: string;
  /** Pre-Depends and Depends, comma-separated. */
  depends: string;
}

/** apt's candidate for `name` on `arch`, with its version and dependencies. */
export async function aptShow(name: string, arch: string): Promise<DebPackage> {
  return (await aptShowMany([name], arch)).get(name)!;
}

/**
 * apt's candidates for `names` on `arch`, by name, in one apt-cache call (each call reads apt's lists: ~1.7 s here, so
 * a testbed's 40 packages asked one at a time took 80 s).
 */
export async function aptShowMany(names: string[], arch: string): Promise<Map<string, DebPackage>> {
  const res = await execa('apt-cache', ['show', '--no-all-versions', ...names.map((n) => `${n}:${arch}`)], { reject: false });
  const found = new Map<string, DebPackage>();
  for (const stanza of res.stdout.split(/\n\s*\n/)) {
    const field = (f: string) => stanza.match(new RegExp(`^${f}: (.*)$`, 'm'))?.[1] ?? '';
    // Pre-Depends count as well: e2fsprogs names its libraries there.
    if (field('Package')) found.set(field('Package'), { name: field('Package'), version: field('Version'), arch, fileArch: field('Architecture') || arch, depends: [field('Pre-Depends'), field('Depends')].filter(Boolean).join(', ') });
  }
  const missing = names.find((n) => !found.has(n));
  if (missing !== undefined) {
    throw new ConfigurationError(
      `apt knows no package ${missing}:${arch}, needed for a testbed image. Run "apt-get update"` +
        (arch === 'amd64' ? '' : ` after "dpkg --add-architecture ${arch}"`) +
        ` (scripts/setup.sh does both), then try again.\n  apt-cache said: ${(res.stderr || res.stdout).trim().split('\n').slice(-2).join(' ')}`,
    );
  }
  return found;
}

/** Downloads in flight in this process, by file: images built side by side share their packages. */
const downloading = new Map<string, Promise<string>>();

/**
 * Downloads a package's .deb into the cache (once per version) and returns its path. apt-get writes into a directory
 * of its own, and the file is renamed into the cache when whole: a build in another process never reads half a file.
 */
export async function downloadDeb(pkg: DebPackage): Promise<string> {
  const dir = cacheDir('debs');
  const name = `${pkg.name}_${pkg.version.replace(/:/g, '%3a')}_${pkg.fileArch}.deb`;
  const file = join(dir, name);
  if (existsSync(file)) return file;
  let pending = downloading.get(file);
  if (!pending) {
    pending = (async () => {
      await mkdir(dir, { recursive: true });
      const tmp = await mkdtemp(join(dir, '.download-'));
      try {
        const res = await execa('apt-get', ['download', `${pkg.name}:${pkg.arch}=${pkg.version}`], { cwd: tmp, reject: false });
        if (res.exitCode !== 0 || !existsSync(join(tmp, name))) throw new InfrastructureError(`apt-get download ${pkg.name}:${pkg.arch}=${pkg.version} failed:\n${res.stderr.trim()}`);
        await rename(join(tmp, name), file);
        return file;
      } finally {
        await rm(tmp, { recursive: true, force: true });
        downloading.delete(file);
      }
    })();
    downloading.set(file, pending);
  }
  return pending;
}

/** `name` resolved through a meta package (linux-image-arm64 -> linux-image-6.1.0-NN-arm64) when `versioned` matches a dependency. */
export async function resolvePackage(name: string, arch: string, versioned?: RegExp): Promise<DebPackage> {
  const meta = await aptShow(name, arch);
  const real = versioned ? meta.depends.match(versioned)?.[1] : undefined;
  return real && real !== meta.name ? aptShow(real, arch) : meta;
}

/** The versioned kernel package that a kernel meta package (linux-image-amd64) stands for on `arch`: linux-image-6.1.0-NN-amd64. */
export function resolveKernel(meta: string, arch: string): Promise<DebPackage> {
  return resolvePackage(meta, arch, /\b(linux-image-[0-9][^\s,(]*)/);
}

/** The release a versioned kernel package installs (its lib/modules/<release>): 6.1.0-NN-amd64. */
export function kernelRelease(kernel: DebPackage): string {
  return kernel.name.replace(/^linux-image-/, '');
}

/** When apt's package lists last changed: a new candidate version can only appear after that. */
export async function aptListsStamp(): Promise<string> {
  return stat('/var/lib/apt/lists').then((s) => String(s.mtimeMs)).catch(() => 'none');
}

/** Downloads `pkg` (cached) and unpacks it into `dir`. */
export async function unpackDeb(pkg: DebPackage, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await execa('dpkg-deb', ['-x', await downloadDeb(pkg), dir]);
}
