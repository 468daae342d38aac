// Builds testbed guest images from Debian packages, cached under a key of everything that goes into them.
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, lstat, mkdir, open, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { runTool } from '../../harness/qemu/host-packages.ts';
import { buildOnce, inIndex, viaIndex } from '../../harness/cache/cached-build.ts';
import { sourceDir, sourceFile } from '../../harness/package-files.ts';
import { aptListsStamp, aptShow, aptShowMany, downloadDeb, resolveKernel, type DebPackage } from './debian-packages.ts';
import { batmanAdvPackages, batmanAdvWithoutNc, replaceBatmanAdv } from './batman-adv.ts';
import type { TestbedImage, TestbedRecipe } from './recipe.ts';
import { stage1Tree } from './stage1.ts';
import { moduleName, moduleNameOf, readModulesDep } from './modules.ts';

const here = sourceDir(import.meta.url);
const ROOTFS = join(here, 'rootfs');

type Log = (line: string) => void;

/** Returns the built image for `recipe`, building it first if the cache has none for its current inputs. */
export async function ensureTestbed(recipe: TestbedRecipe, opts: { log?: Log; rebuild?: boolean } = {}): Promise<TestbedImage> {
  const index = await testbedIndex(recipe);
  return viaIndex(index.file, index.inputs, index.stillThere, () => resolveAndBuild(recipe, opts), opts.rebuild);
}

/** True when the testbed `recipe` is in the image cache for today's inputs (ensureTestbed would build nothing). */
export async function testbedCached(recipe: TestbedRecipe): Promise<boolean> {
  const index = await testbedIndex(recipe);
  return inIndex(index.file, index.inputs, index.stillThere);
}

/**
 * Where ensureTestbed looks before it builds: the index spares the apt-cache calls on every machine start while the
 * recipe, its rootfs, this builder and apt's package lists are unchanged.
 */
async function testbedIndex(recipe: TestbedRecipe): Promise<{ file: string; inputs: string; stillThere: (image: TestbedImage) => boolean }> {
  return {
    file: cacheDir('images', `testbed-${recipe.name}.index.json`),
    inputs: `${await recipeKey(recipe, [])}|${await aptListsStamp()}`,
    stillThere: (image) => existsSync(join(image.dir, 'manifest.json')),
  };
}

/** The steps a testbed build logs ("step k/N: …"), for progress lines. */
const BUILD_STEPS = 6;

async function resolveAndBuild(recipe: TestbedRecipe, opts: { log?: Log; rebuild?: boolean }): Promise<TestbedImage> {
  const log = opts.log ?? (() => undefined);
  // Stage 2's own packages with all their libraries, even those the initramfs has: its copy was pruned to what its
  // own programs link (fdisk brings libreadline8, whose libhistory only Nix needs).
  const [kernelPkg, busyboxPkg, extraPkgs, rootPkgs] = await Promise.all([
    resolveKernel(recipe.kernelPackage, recipe.debArch),
    aptShow(recipe.busyboxPackage, recipe.debArch),
    withLibraries(recipe.extraPackages ?? [], recipe.debArch),
    withLibraries(recipe.rootPackages ?? [], recipe.debArch),
  ]);
  const batman = withoutNc(recipe) ? await batmanAdvPackages(kernelPkg, recipe.debArch) : [];
  const key = await recipeKey(recipe, [kernelPkg, busyboxPkg, ...extraPkgs, ...rootPkgs, ...batman]);
  const dir = cacheDir('images', `testbed-${recipe.name}-${key}`);
  return buildOnce(dir, !!opts.rebuild, async (out, work) => {
    log(`building testbed ${recipe.name} (${kernelPkg.name} ${kernelPkg.version}, ${busyboxPkg.name} ${busyboxPkg.version}) into ${dir}`);
    log(`step 1/${BUILD_STEPS}: fetching ${2 + extraPkgs.length + rootPkgs.length} Debian packages (cached in debs/)`);
    const [kernelDeb, busyboxDeb] = await Promise.all([downloadDeb(kernelPkg), downloadDeb(busyboxPkg)]);
    const extraDebs = await Promise.all(extraPkgs.map((p) => downloadDeb(p)));
    const rootDebs = await Promise.all(rootPkgs.map((p) => downloadDeb(p)));
    const image = await build(recipe, key, work, out, dir, kernelDeb, busyboxDeb, extraDebs, rootDebs, { kernel: kernelPkg, busybox: busyboxPkg, extra: [...extraPkgs, ...rootPkgs.filter((p) => !extraPkgs.some((e) => e.name === p.name))], batman }, log);
    log(`testbed ${recipe.name} ready: ${dir}`);
    return image;
  });
}

async function build(
  recipe: TestbedRecipe,
  key: string,
  work: string,
  out: string,
  finalDir: string,
  kernelDeb: string,
  busyboxDeb: string,
  extraDebs: string[],
  rootDebs: string[],
  pkgs: { kernel: DebPackage; busybox: DebPackage; extra: DebPackage[]; batman: DebPackage[] },
  log: Log,
): Promise<TestbedImage> {
  log(`step 2/${BUILD_STEPS}: unpacking the kernel and busybox`);
  const kx = join(work, 'kernel');
  const bx = join(work, 'busybox');
  const root = join(work, 'root');
  await Promise.all([mkdir(kx), mkdir(bx)]);
  await execa('dpkg-deb', ['-x', kernelDeb, kx]);
  await execa('dpkg-deb', ['-x', busyboxDeb, bx]);
  const kernelVersion = (await readdir(join(kx, 'lib/modules')))[0];
  if (!kernelVersion) throw new InfrastructureError(`${kernelDeb} has no lib/modules/<version>: not a kernel package?`);
  const bootDir = join(kx, 'boot');
  const shipped = (await readdir(bootDir)).find((f) => f.startsWith('vmlinuz-') || f.startsWith('vmlinux-'));
  if (!shipped) throw new InfrastructureError(`${kernelDeb} has no boot/vmlinuz-*: not a kernel package?`);
  await cp(join(bootDir, shipped), join(out, 'kernel.img'));

  let kernel = join(finalDir, 'kernel.img');
  if (recipe.extractVmlinux && (await extractVmlinux(join(bootDir, shipped), join(out, 'vmlinux'), work))) kernel = join(finalDir, 'vmlinux');

  // initramfs tree: rootfs files, busybox, modules, users.
  log(`step 3/${BUILD_STEPS}: the system tree: kernel modules, device trees, ${pkgs.extra.length} more packages`);
  await cp(ROOTFS, root, { recursive: true });
  await mkdir(join(root, 'bin'), { recursive: true });
  await cp(join(bx, 'bin/busybox'), join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  const builtin = await copyModules(recipe, kx, kernelVersion, root);
  if (pkgs.batman.length) await replaceBatmanAdv(join(root, 'lib/modules', kernelVersion), await batmanAdvWithoutNc(pkgs.kernel, pkgs.batman, recipe.debArch, log));
  // Modules built into this kernel need no loading (the list is shared by architectures whose configs differ).
  const bootModules = recipe.bootModules.filter((m) => !builtin.has(moduleName(m)));
  await writeFile(join(root, 'etc/fleetlab/modules'), bootModules.join('\n') + '\n');
  const deviceTrees: Record<string, string> = {};
  for (const dt of recipe.deviceTrees ?? []) {
    const src = join(kx, 'usr/lib', `linux-image-${kernelVersion}`, dt.file);
    if (!existsSync(src)) throw new ConfigurationError(`testbed recipe ${recipe.name}: device tree ${dt.file} is not in ${basename(kernelDeb)}. Fix deviceTrees in machines/testbed/${recipe.name}.ts.`);
    const name = basename(dt.file);
    await cp(src, join(out, name));
    for (const node of dt.removeNodes ?? []) await runTool('fdtput', ['-r', join(out, name), node], { purpose: `building testbed ${recipe.name}` });
    deviceTrees[name] = join(finalDir, name);
  }
  await addPackages(recipe, extraDebs, work, root);
  // The recipe's own files win over the packages' (its PAM configuration over libpam-runtime's).
  if (recipe.overlay) await cp(join(here, recipe.overlay), root, { recursive: true });
  for (const [path, target] of Object.entries(recipe.links ?? {})) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await rm(join(root, path), { force: true });
    await execa('ln', ['-s', target, join(root, path)]);
  }
  await writeUsers(recipe, key, root);
  const ssh = existsSync(join(root, 'usr/sbin/dropbear')) ? await sshKeys(recipe, root, out, finalDir) : undefined;
  // Mount points of stage 2 on a disk root (the initramfs creates its own at boot).
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'newroot']) await mkdir(join(root, d), { recursive: true });
  log(`step 4/${BUILD_STEPS}: packing the initramfs, and stage 1's for NixOS-shaped generations`);
  await packInitramfs(root, join(out, 'initrd.img'));
  const stage1 = join(work, 'stage1');
  await stage1Tree(root, kernelVersion, stage1);
  await packInitramfs(stage1, join(out, 'stage1.img'));
  // Stage 2's system: the initramfs tree and, where the recipe has them, packages for the root filesystem only.
  let stage2Root = root;
  log(`step 5/${BUILD_STEPS}: stage 2${rootDebs.length ? ` (${rootDebs.length} root packages)` : ''}`);
  if (rootDebs.length) {
    stage2Root = join(work, 'stage2');
    await execa('cp', ['-a', root, stage2Root]);
    await unpackDebs(recipe, rootDebs, work, stage2Root, 'root');
    await packInitramfs(stage2Root, join(out, 'stage2.cpio'));
  }
  // The same system as an ext4 root filesystem labelled like NixOS's, for root=LABEL=nixos (stage 1 in /init).
  log(`step 6/${BUILD_STEPS}: the ext4 root filesystem`);
  const rootfsMiB = Math.max(160, Math.ceil((await treeBytes(stage2Root)) / 1024 / 1024 * 1.3) + 32);
  await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'nixos', '-d', stage2Root, '-E', 'root_owner=0:0', join(out, 'rootfs.ext4'), `${rootfsMiB}M`], { purpose: `building testbed ${recipe.name}` });

  const image: TestbedImage = {
    recipe: recipe.name,
    key,
    dir: finalDir,
    kernel,
    kernelImage: join(finalDir, 'kernel.img'),
    initrd: join(finalDir, 'initrd.img'),
    stage1: join(finalDir, 'stage1.img'),
    rootfs: join(finalDir, 'rootfs.ext4'),
    ...(rootDebs.length ? { stage2: join(finalDir, 'stage2.cpio') } : {}),
    kernelVersion,
    deviceTrees,
    packages: Object.fromEntries([pkgs.kernel, pkgs.busybox, ...pkgs.extra].map((p) => [p.name, p.version])),
    ssh,
  };
  return image;
}

/**
 * The packages and, recursively, the library packages they depend on (names starting with "lib"): their shared
 * libraries without the rest of a Debian system (dpkg, tar and the like that a full closure would pull in).
 */
async function withLibraries(names: string[], arch: string): Promise<DebPackage[]> {
  const found = new Map<string, DebPackage>();
  // Breadth first, one apt-cache call per level of dependencies.
  let level = [...new Set(names)];
  while (level.length) {
    const pkgs = await aptShowMany(level, arch);
    const next = new Set<string>();
    for (const name of level) {
      const pkg = pkgs.get(name)!;
      found.set(name, pkg);
      for (const dep of pkg.depends.split(',')) {
        const first = dep.split('|')[0]!.trim().split(/[\s(:]/)[0]!;
        if (first.startsWith('lib') && !found.has(first) && !level.includes(first)) next.add(first);
      }
    }
    level = [...next];
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Unpacks the recipe's extra Debian packages into the guest (programs and shared libraries; documentation, locales
 * and gconv modules left out) and points /bin/sh at the recipe's shell.
 */
async function addPackages(recipe: TestbedRecipe, debs: string[], work: string, root: string): Promise<void> {
  await unpackDebs(recipe, debs, work, root, 'extra');
  if (recipe.shell) {
    const target = ['bin', 'usr/bin'].map((d) => join(d, recipe.shell!)).find((p) => existsSync(join(root, p)));
    if (!target) throw new ConfigurationError(`testbed recipe ${recipe.name}: shell "${recipe.shell}" is not in its extraPackages (${(recipe.extraPackages ?? []).join(', ')}).`);
    await execa('ln', ['-sfn', `/${target}`, join(root, 'bin/sh')]);
  }
}

/** Unpacks Debian packages into `root` (no documentation, locales or gconv modules) and prunes unlinked libraries. */
async function unpackDebs(recipe: TestbedRecipe, debs: string[], work: string, root: string, tag: string): Promise<void> {
  for (const [i, deb] of debs.entries()) {
    const x = join(work, `${tag}-${i}`);
    await mkdir(x);
    await execa('dpkg-deb', ['-x', deb, x]);
    for (const keep of recipe.keepShare ?? []) if (existsSync(join(x, 'usr/share', keep))) await execa('cp', ['-a', '--no-preserve=ownership', join(x, 'usr/share', keep), join(x, `kept-${keep}`)]);
    await execa('rm', ['-rf', join(x, 'usr/share'), join(x, `usr/lib/${recipe.debArch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/gconv`)]);
    for (const keep of recipe.keepShare ?? []) {
      if (!existsSync(join(x, `kept-${keep}`))) continue;
      await mkdir(join(x, 'usr/share'), { recursive: true });
      await execa('mv', [join(x, `kept-${keep}`), join(x, 'usr/share', keep)]);
    }
    await execa('cp', ['-a', '--no-preserve=ownership', `${x}/.`, root]);
  }
  await pruneLibraries(root, recipe.debArch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu');
}

/** Bytes of the files under `dir` (apparent sizes; a filesystem for it needs some more). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await lstat(join(e.parentPath, e.name))).size;
  }
  return total;
}

/**
 * Removes the shared libraries no program in the guest links: what Debian's package dependencies brought along
 * without any binary needing it (kexec-tools depends on libxenmisc, Xen's whole toolstack, of which kexec links
 * libxenctrl and its five helpers). A library in lib/<triplet> or usr/lib/<triplet> stays when an ELF file outside
 * those directories needs it (readelf's NEEDED), directly or through libraries it keeps, or when it is the dynamic
 * loader, libc or an NSS module (loaded without NEEDED).
 */
async function pruneLibraries(root: string, triplet: string): Promise<void> {
  const libDirs = [`lib/${triplet}`, `usr/lib/${triplet}`];
  const files: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(join(root, d), { withFileTypes: true })) {
      const rel = d ? `${d}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (rel !== 'lib/modules') await walk(rel);
      } else files.push(rel);
    }
  };
  await walk('');
  const isElf = async (rel: string) => {
    const fh = await open(join(root, rel), 'r').catch(() => undefined);
    if (!fh) return false;
    try {
      const b = Buffer.alloc(4);
      await fh.read(b, 0, 4, 0);
      return b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    } finally {
      await fh.close();
    }
  };
  const candidate = (rel: string) => libDirs.some((d) => dirname(rel) === d) && /^lib.*\.so(\.|$)/.test(basename(rel)) && !/^(ld-linux|libc\.so|libnss_)/.test(basename(rel));
  const elves: string[] = [];
  for (const f of files) if ((await lstat(join(root, f))).isFile() && (await isElf(f))) elves.push(f);
  const needed = new Map<string, string[]>();
  for (let k = 0; k < elves.length; k += 100) {
    const batch = elves.slice(k, k + 100);
    const out = await runTool('readelf', ['-d', '-W', ...batch.map((f) => join(root, f))], { purpose: 'building a testbed (finding the libraries its programs link)' });
    // One file's section follows "File: <path>" when readelf reads several; a single file has no header.
    let current = batch.length === 1 ? batch[0]! : '';
    for (const line of out.split('\n')) {
      const file = /^File: (.*)$/.exec(line)?.[1];
      if (file) current = relative(root, file);
      const lib = /\(NEEDED\)\s+Shared library: \[(.+)\]/.exec(line)?.[1];
      if (lib && current) needed.set(current, [...(needed.get(current) ?? []), lib]);
    }
  }
  // The files behind a library name: its symlinks and the real file (absolute links point inside the guest).
  const resolveLib = async (name: string): Promise<string[]> => {
    for (const d of libDirs) {
      const chain: string[] = [];
      let rel = `${d}/${name}`;
      for (let hop = 0; hop < 8; hop++) {
        const st = await lstat(join(root, rel)).catch(() => undefined);
        if (!st) break;
        chain.push(rel);
        if (!st.isSymbolicLink()) return chain;
        const target = await readlink(join(root, rel));
        rel = target.startsWith('/') ? target.slice(1) : join(dirname(rel), target);
      }
      if (chain.length) return chain;
    }
    return [];
  };
  const keep = new Set<string>();
  const queue = elves.filter((f) => !candidate(f));
  const seen = new Set<string>();
  while (queue.length) {
    const f = queue.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const lib of needed.get(f) ?? []) {
      for (const rel of await resolveLib(lib)) {
        keep.add(rel);
        if (!seen.has(rel)) queue.push(rel);
      }
    }
  }
  for (const f of files.filter((x) => candidate(x) && !keep.has(x))) await rm(join(root, f), { force: true });
}

/**
 * Keys for the guest's dropbear, made anew with every cache build and never committed: the server's ed25519 host key
 * (baked into the guest), and root's ed25519 key pair (the public half in /root/.ssh/authorized_keys, the private
 * half beside the image in OpenSSH format for the host's client).
 */
async function sshKeys(recipe: TestbedRecipe, root: string, out: string, finalDir: string): Promise<NonNullable<TestbedImage['ssh']>> {
  const purpose = `building testbed ${recipe.name}'s SSH keys`;
  await mkdir(join(root, 'etc/dropbear'), { recursive: true });
  const hostKey = join(root, 'etc/dropbear/dropbear_ed25519_host_key');
  await runTool('dropbearkey', ['-t', 'ed25519', '-f', hostKey], { purpose });
  const hostPub = (await runTool('dropbearkey', ['-y', '-f', hostKey], { purpose })).split('\n').find((l) => l.startsWith('ssh-ed25519 '))!;
  await mkdir(join(out, 'ssh'), { recursive: true });
  const clientDropbear = join(out, 'ssh/root.dropbear');
  await runTool('dropbearkey', ['-t', 'ed25519', '-f', clientDropbear], { purpose });
  const clientPub = (await runTool('dropbearkey', ['-y', '-f', clientDropbear], { purpose })).split('\n').find((l) => l.startsWith('ssh-ed25519 '))!;
  await runTool('dropbearconvert', ['dropbear', 'openssh', clientDropbear, join(out, 'ssh/root')], { purpose });
  await chmod(join(out, 'ssh/root'), 0o600);
  await mkdir(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
  await writeFile(join(root, 'root/.ssh/authorized_keys'), `${clientPub}\n`, { mode: 0o600 });
  return { user: 'root', privateKey: join(finalDir, 'ssh/root'), hostKey: hostPub.split(' ').slice(0, 2).join(' ') };
}

/**
 * Writes the uncompressed ELF kernel inside an x86 bzImage (its xz payload) to `dest`; false if there is none. xz
 * reads from and writes to files it is given as descriptors: through execa (buffered, or even with stdout to a file,
 * which execa pipes through Node) the 65 MB took 23 s instead of 0.8 s.
 */
async function extractVmlinux(bzImage: string, dest: string, work: string): Promise<boolean> {
  const data = await readFile(bzImage);
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  const payload = join(work, 'vmlinux.xz');
  for (let at = data.indexOf(magic); at >= 0; at = data.indexOf(magic, at + 1)) {
    await writeFile(payload, data.subarray(at));
    // xz stops at the end of its stream and complains about what follows; the output is complete.
    const [input, output] = await Promise.all([open(payload, 'r'), open(dest, 'w')]);
    try {
      await new Promise<void>((done, fail) => spawn('xz', ['-dc'], { stdio: [input.fd, output.fd, 'ignore'] }).on('error', fail).on('close', () => done()));
    } finally {
      await Promise.all([input.close(), output.close()]);
    }
    const head = Buffer.alloc(4);
    const fd = await open(dest, 'r');
    const { bytesRead } = await fd.read(head, 0, 4, 0).finally(() => fd.close());
    if (bytesRead === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return true;
  }
  await rm(dest, { force: true });
  return false;
}

/**
 * Copies the recipe's modules and their dependencies, with a modules.dep for busybox modprobe.
 * Returns the recipe's modules that this kernel has built in (normalised names), which need no copy.
 */
async function copyModules(recipe: TestbedRecipe, kx: string, kver: string, root: string): Promise<Set<string>> {
  await execa('busybox', ['depmod', '-b', kx, kver]);
  const modDir = join(kx, 'lib/modules', kver);
  const builtinText = await readFile(join(modDir, 'modules.builtin'), 'utf8').catch(() => '');
  const builtin = new Set(builtinText.split('\n').filter(Boolean).map(moduleNameOf));
  const { deps, byName } = await readModulesDep(modDir);
  const wanted = new Set<string>();
  const visit = (path: string) => {
    if (wanted.has(path)) return;
    wanted.add(path);
    for (const d of deps.get(path) ?? []) visit(d);
  };
  for (const m of recipe.modules) {
    if (builtin.has(moduleName(m))) continue;
    const path = byName.get(moduleName(m));
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
  // The aliases of the copied modules: the kernel asks modprobe for a module by alias when a program needs it
  // (nfnetlink-subsys-10 for nf_tables, ipt_MASQUERADE for xt_MASQUERADE), as iptables does.
  const have = new Set([...wanted].map(moduleNameOf));
  const aliases = (await readFile(join(modDir, 'modules.alias'), 'utf8').catch(() => '')).split('\n').filter((l) => l.startsWith('alias ') && have.has(moduleName(l.split(' ')[2] ?? '')));
  await writeFile(join(dest, 'modules.alias'), aliases.join('\n') + '\n');
  return new Set(recipe.modules.map(moduleName).filter((m) => builtin.has(m)));
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

/** Whether `recipe`'s guest loads batman-adv built without network coding (batman-adv.ts) rather than Debian's. */
function withoutNc(recipe: TestbedRecipe): boolean {
  return recipe.modules.includes('batman-adv') && (recipe.batmanAdv ?? 'without-network-coding') === 'without-network-coding';
}

/** Hash of the recipe, its rootfs files, this builder and the package versions. */
async function recipeKey(recipe: TestbedRecipe, pkgs: DebPackage[]): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(recipe));
  h.update(await readFile(sourceFile(import.meta.url)));
  // How packages and their libraries are chosen is part of what goes in.
  h.update(await readFile(join(here, 'debian-packages.ts')));
  h.update(await readFile(join(here, 'stage1.ts')));
  h.update(await readFile(join(here, 'modules.ts')));
  if (withoutNc(recipe)) h.update(await readFile(join(here, 'batman-adv.ts')));
  // The files laid into the guest: the rootfs and the recipe's overlay (tagged, so moving a file between them counts).
  const walk = async (base: string, tag: string, d = base): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(base, tag, p);
      else h.update(`${tag}${relative(base, p)}\0${(await stat(p)).mode & 0o111}\0`).update(await readFile(p));
    }
  };
  await walk(ROOTFS, '');
  if (recipe.overlay) await walk(join(here, recipe.overlay), 'overlay/');
  for (const p of pkgs) h.update(`${p.name}=${p.version}:${p.arch}\n`);
  return h.digest('hex').slice(0, 16);
}
