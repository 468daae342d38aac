// Builds testbed guest images from Debian packages, cached under a key of everything that goes into them.
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { Deadline, pollUntil } from '../../harness/time/deadline.ts';
import type { TestbedImage, TestbedRecipe } from './recipe.ts';

const here = dirname(fileURLToPath(import.meta.url));
const ROOTFS = join(here, 'rootfs');

/** A Debian package pinned to the version apt offers now. */
interface DebPackage {
  name: string;
  version: string;
  arch: string;
  depends: string;
}

type Log = (line: string) => void;

/** Returns the built image for `recipe`, building it first if the cache has none for its current inputs. */
export async function ensureTestbed(recipe: TestbedRecipe, opts: { log?: Log; rebuild?: boolean } = {}): Promise<TestbedImage> {
  const memoKey = JSON.stringify(recipe);
  if (!opts.rebuild) {
    const known = built.get(memoKey) ?? (await fromIndex(recipe));
    if (known && existsSync(join(known.dir, 'manifest.json'))) {
      built.set(memoKey, known);
      return known;
    }
  }
  const image = await resolveAndBuild(recipe, opts);
  built.set(memoKey, image);
  await writeIndex(recipe, image);
  return image;
}

/** Images this process has resolved, by recipe. */
const built = new Map<string, TestbedImage>();

/**
 * The image last built for `recipe`, if the recipe, its rootfs, the builder and apt's package lists are
 * unchanged since: spares the apt-cache calls (~1 s) on every machine start.
 */
async function fromIndex(recipe: TestbedRecipe): Promise<TestbedImage | undefined> {
  try {
    const idx = JSON.parse(await readFile(indexPath(recipe), 'utf8')) as { inputs: string; image: TestbedImage };
    return idx.inputs === (await localInputs(recipe)) ? idx.image : undefined;
  } catch {
    return undefined;
  }
}

async function writeIndex(recipe: TestbedRecipe, image: TestbedImage): Promise<void> {
  await writeFile(indexPath(recipe), JSON.stringify({ inputs: await localInputs(recipe), image }, null, 2) + '\n');
}

function indexPath(recipe: TestbedRecipe): string {
  return cacheDir('images', `testbed-${recipe.name}.index.json`);
}

/** Hash of what can change without a new package version being resolved: recipe, rootfs, builder, apt lists' age. */
async function localInputs(recipe: TestbedRecipe): Promise<string> {
  const lists = await stat('/var/lib/apt/lists').then((s) => String(s.mtimeMs)).catch(() => 'none');
  return `${await recipeKey(recipe, [])}|${lists}`;
}

async function resolveAndBuild(recipe: TestbedRecipe, opts: { log?: Log; rebuild?: boolean }): Promise<TestbedImage> {
  const log = opts.log ?? (() => undefined);
  const kernelMeta = await aptShow(recipe.kernelPackage, recipe.debArch);
  const kernelName = kernelMeta.depends.match(/\b(linux-image-[0-9][^\s,(]*)/)?.[1] ?? kernelMeta.name;
  const kernelPkg = kernelName === kernelMeta.name ? kernelMeta : await aptShow(kernelName, recipe.debArch);
  const busyboxPkg = await aptShow(recipe.busyboxPackage, recipe.debArch);
  const key = await recipeKey(recipe, [kernelPkg, busyboxPkg]);
  const dir = cacheDir('images', `testbed-${recipe.name}-${key}`);
  const manifestPath = join(dir, 'manifest.json');
  if (!opts.rebuild && existsSync(manifestPath)) return JSON.parse(await readFile(manifestPath, 'utf8')) as TestbedImage;

  return withLock(`${dir}.lock`, async () => {
    if (!opts.rebuild && existsSync(manifestPath)) return JSON.parse(await readFile(manifestPath, 'utf8')) as TestbedImage;
    log(`building testbed ${recipe.name} (${kernelPkg.name} ${kernelPkg.version}, ${busyboxPkg.name} ${busyboxPkg.version}) into ${dir}`);
    const [kernelDeb, busyboxDeb] = await Promise.all([downloadDeb(kernelPkg), downloadDeb(busyboxPkg)]);
    const work = await mkdtemp(`${dir}.build-`);
    try {
      const image = await build(recipe, key, work, dir, kernelDeb, busyboxDeb, { kernel: kernelPkg, busybox: busyboxPkg });
      await rm(dir, { recursive: true, force: true });
      await rename(join(work, 'out'), dir);
      log(`testbed ${recipe.name} ready: ${dir}`);
      return image;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}

async function build(
  recipe: TestbedRecipe,
  key: string,
  work: string,
  finalDir: string,
  kernelDeb: string,
  busyboxDeb: string,
  pkgs: { kernel: DebPackage; busybox: DebPackage },
): Promise<TestbedImage> {
  const out = join(work, 'out');
  const kx = join(work, 'kernel');
  const bx = join(work, 'busybox');
  const root = join(work, 'root');
  await Promise.all([mkdir(out), mkdir(kx), mkdir(bx)]);
  await execa('dpkg-deb', ['-x', kernelDeb, kx]);
  await execa('dpkg-deb', ['-x', busyboxDeb, bx]);
  const kernelVersion = (await readdir(join(kx, 'lib/modules')))[0];
  if (!kernelVersion) throw new InfrastructureError(`${kernelDeb} has no lib/modules/<version>: not a kernel package?`);
  const bootDir = join(kx, 'boot');
  const shipped = (await readdir(bootDir)).find((f) => f.startsWith('vmlinuz-') || f.startsWith('vmlinux-'));
  if (!shipped) throw new InfrastructureError(`${kernelDeb} has no boot/vmlinuz-*: not a kernel package?`);
  await cp(join(bootDir, shipped), join(out, 'kernel.img'));

  let kernel = join(finalDir, 'kernel.img');
  if (recipe.extractVmlinux) {
    const elf = await extractVmlinux(join(bootDir, shipped));
    if (elf) {
      await writeFile(join(out, 'vmlinux'), elf);
      kernel = join(finalDir, 'vmlinux');
    }
  }

  // initramfs tree: rootfs files, busybox, modules, users.
  await cp(ROOTFS, root, { recursive: true });
  await mkdir(join(root, 'bin'), { recursive: true });
  await cp(join(bx, 'bin/busybox'), join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  await copyModules(recipe, kx, kernelVersion, root);
  await writeFile(join(root, 'etc/fleetlab/modules'), recipe.bootModules.join('\n') + '\n');
  await writeUsers(recipe, key, root);
  await packInitramfs(root, join(out, 'initrd.img'));

  const image: TestbedImage = {
    recipe: recipe.name,
    key,
    dir: finalDir,
    kernel,
    kernelImage: join(finalDir, 'kernel.img'),
    initrd: join(finalDir, 'initrd.img'),
    kernelVersion,
    packages: { [pkgs.kernel.name]: pkgs.kernel.version, [pkgs.busybox.name]: pkgs.busybox.version },
  };
  await writeFile(join(out, 'manifest.json'), JSON.stringify(image, null, 2) + '\n');
  return image;
}

/** The uncompressed ELF kernel inside an x86 bzImage (its xz payload), or undefined if there is none. */
async function extractVmlinux(bzImage: string): Promise<Buffer | undefined> {
  const data = await readFile(bzImage);
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  for (let at = data.indexOf(magic); at >= 0; at = data.indexOf(magic, at + 1)) {
    // xz stops at the end of its stream and complains about what follows; the output is complete.
    const res = await execa('xz', ['-dc'], { input: data.subarray(at), encoding: 'buffer', reject: false, maxBuffer: 512 * 1024 * 1024 });
    const elf = Buffer.from(res.stdout as Uint8Array);
    if (elf.length > 4 && elf.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return elf;
  }
  return undefined;
}

/** Copies the recipe's modules and their dependencies, with a modules.dep for busybox modprobe. */
async function copyModules(recipe: TestbedRecipe, kx: string, kver: string, root: string): Promise<void> {
  await execa('busybox', ['depmod', '-b', kx, kver]);
  const modDir = join(kx, 'lib/modules', kver);
  const deps = new Map<string, string[]>();
  for (const line of (await readFile(join(modDir, 'modules.dep'), 'utf8')).split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod) deps.set(mod.trim(), (rest ?? '').trim().split(/\s+/).filter(Boolean));
  }
  const norm = (s: string) => s.replace(/-/g, '_');
  const byName = new Map([...deps.keys()].map((p) => [norm(basename(p).replace(/\.ko(\.\w+)?$/, '')), p]));
  const wanted = new Set<string>();
  const visit = (path: string) => {
    if (wanted.has(path)) return;
    wanted.add(path);
    for (const d of deps.get(path) ?? []) visit(d);
  };
  for (const m of recipe.modules) {
    const path = byName.get(norm(m));
    if (!path) throw new ConfigurationError(`testbed recipe ${recipe.name}: module "${m}" is not in kernel ${kver} (not built as a module?). Remove it from machines/testbed/${recipe.name}.ts.`);
    visit(path);
  }
  const dest = join(root, 'lib/modules', kver);
  for (const path of wanted) {
    await mkdir(dirname(join(dest, path)), { recursive: true });
    await cp(join(modDir, path), join(dest, path));
  }
  const depLines = [...wanted].sort().map((p) => `${p}: ${(deps.get(p) ?? []).join(' ')}`.trimEnd());
  await writeFile(join(dest, 'modules.dep'), depLines.join('\n') + '\n');
}

/** Writes passwd, shadow and group with SHA-512 crypt hashes (busybox mkpasswd), salted from the key. */
async function writeUsers(recipe: TestbedRecipe, key: string, root: string): Promise<void> {
  const passwd: string[] = [];
  const shadow: string[] = [];
  const group = ['root:x:0:'];
  for (const u of recipe.users) {
    const salt = createHash('sha256').update(`${key}:${u.name}`).digest('hex').slice(0, 16);
    const { stdout: hash } = await execa('busybox', ['mkpasswd', '-m', 'sha512', u.password, salt]);
    passwd.push(`${u.name}:x:${u.uid}:${u.uid}:${u.name}:${u.home}:/bin/sh`);
    shadow.push(`${u.name}:${hash.trim()}:19000:0:99999:7:::`);
    if (u.uid !== 0) group.push(`${u.name}:x:${u.uid}:`);
    await mkdir(join(root, u.home), { recursive: true });
  }
  await writeFile(join(root, 'etc/passwd'), passwd.join('\n') + '\n');
  await writeFile(join(root, 'etc/shadow'), shadow.join('\n') + '\n', { mode: 0o600 });
  await writeFile(join(root, 'etc/group'), group.join('\n') + '\n');
}

/** Packs a directory as an uncompressed newc cpio archive, owned by root, in a stable order. */
async function packInitramfs(root: string, out: string): Promise<void> {
  const files: string[] = [];
  const walk = async (d: string) => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      files.push(relative(root, p));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  await execa('cpio', ['--quiet', '-o', '-H', 'newc', '-R', '0:0', '--reproducible', '-O', out], { cwd: root, input: files.join('\n') + '\n' });
}

/** apt's candidate for `name` on `arch`, with its version and dependencies. */
async function aptShow(name: string, arch: string): Promise<DebPackage> {
  const res = await execa('apt-cache', ['show', '--no-all-versions', `${name}:${arch}`], { reject: false });
  if (res.exitCode !== 0 || !/^Package:/m.test(res.stdout)) {
    throw new ConfigurationError(
      `apt knows no package ${name}:${arch}, needed for a testbed image. Run "apt-get update"` +
        (arch === 'amd64' ? '' : ` after "dpkg --add-architecture ${arch}"`) +
        ` (scripts/setup.sh does both), then try again.\n  apt-cache said: ${(res.stderr || res.stdout).trim().split('\n').slice(-2).join(' ')}`,
    );
  }
  const field = (f: string) => res.stdout.match(new RegExp(`^${f}: (.*)$`, 'm'))?.[1] ?? '';
  return { name: field('Package'), version: field('Version'), arch, depends: field('Depends') };
}

/** Downloads a package's .deb into the cache (once per version) and returns its path. */
async function downloadDeb(pkg: DebPackage): Promise<string> {
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

/** Hash of the recipe, its rootfs files, this builder and the package versions. */
async function recipeKey(recipe: TestbedRecipe, pkgs: DebPackage[]): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(recipe));
  h.update(await readFile(fileURLToPath(import.meta.url)));
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else h.update(`${relative(ROOTFS, p)}\0${(await stat(p)).mode & 0o111}\0`).update(await readFile(p));
    }
  };
  await walk(ROOTFS);
  for (const p of pkgs) h.update(`${p.name}=${p.version}:${p.arch}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Runs `fn` holding an exclusive lock file, so parallel workers build an image once. */
async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
