// Debian packages for testbed images: apt's candidate version, downloaded once per version into the cache.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';

/** A Debian package pinned to the version apt offers now. */
export interface DebPackage {
  name: string;
  version: string;
  arch: string;
  /** Pre-Depends and Depends, comma-separated. */
  depends: string;
}

/** apt's candidate for `name` on `arch`, with its version and dependencies. */
export async function aptShow(name: string, arch: string): Promise<DebPackage> {
  const res = await execa('apt-cache', ['show', '--no-all-versions', `${name}:${arch}`], { reject: false });
  if (res.exitCode !== 0 || !/^Package:/m.test(res.stdout)) {
    throw new ConfigurationError(
      `apt knows no package ${name}:${arch}, needed for a testbed image. Run "apt-get update"` +
        (arch === 'amd64' ? '' : ` after "dpkg --add-architecture ${arch}"`) +
        ` (scripts/setup.sh does both), then try again.\n  apt-cache said: ${(res.stderr || res.stdout).trim().split('\n').slice(-2).join(' ')}`,
    );
  }
  const field = (f: string) => res.stdout.match(new RegExp(`^${f}: (.*)$`, 'm'))?.[1] ?? '';
  // Pre-Depends count as well: e2fsprogs names its libraries there.
  return { name: field('Package'), version: field('Version'), arch, depends: [field('Pre-Depends'), field('Depends')].filter(Boolean).join(', ') };
}

/** Downloads a package's .deb into the cache (once per version) and returns its path. */
export async function downloadDeb(pkg: DebPackage): Promise<string> {
  const dir = cacheDir('debs');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${pkg.name}_${pkg.version.replace(/:/g, '%3a')}_${pkg.arch}.deb`);
  if (existsSync(file)) return file;
  const res = await execa('apt-get', ['download', `${pkg.name}:${pkg.arch}=${pkg.version}`], { cwd: dir, reject: false });
  if (res.exitCode !== 0 || !existsSync(file)) {
    throw new InfrastructureError(`apt-get download ${pkg.name}:${pkg.arch}=${pkg.version} failed:\n${res.stderr.trim()}`);
  }
  return file;
}

/** `name` resolved through a meta package (linux-image-arm64 -> linux-image-6.1.0-NN-arm64) when `versioned` matches a dependency. */
export async function resolvePackage(name: string, arch: string, versioned?: RegExp): Promise<DebPackage> {
  const meta = await aptShow(name, arch);
  const real = versioned ? meta.depends.match(versioned)?.[1] : undefined;
  return real && real !== meta.name ? aptShow(real, arch) : meta;
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
