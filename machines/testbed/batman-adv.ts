// batman-adv as upstream has shipped it since 2025.4 (its commit 2cefbadb, "batman-adv: remove network coding
// support"): without network coding. Debian's kernel has it compiled in (CONFIG_BATMAN_ADV_NC=y), and its worker,
// batadv_nc_worker (net/batman-adv/network-coding.c), re-arms every 10 ms on every mesh interface whether network coding
// is switched on or not (it is off by default): about 80 guest wakeups a second per meshed node, which under TCG keep an
// idle node busy (docs/performance.md#an-idle-mesh). The testbed's module is built from the kernel package's own
// source (Debian's linux-source-X.Y of the kernel's version) against its linux-headers, as a kernel configured with
// CONFIG_BATMAN_ADV_NC=n builds it; every other option stays Debian's (BATMAN_V, BLA, DAT, MCAST).
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../../harness/cache/cache-dir.ts';
import { buildOnce } from '../../harness/cache/cached-build.ts';
import { InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { sourceFile } from '../../harness/package-files.ts';
import { runTool } from '../../harness/qemu/host-packages.ts';
import { aptShowMany, downloadDeb, kernelRelease, unpackDeb, type DebPackage } from './debian-packages.ts';

/** Where the module sits in a kernel's module tree. */
export const BATMAN_ADV_KO = 'kernel/net/batman-adv/batman-adv.ko';

/** The Debian architecture of this host (whose linux-kbuild runs the build's tools). */
const hostArch = process.arch === 'arm64' ? 'arm64' : 'amd64';

/**
 * The Debian packages the module is built from for `kernel` (the versioned linux-image package) on `arch`: the
 * kernel's source, its headers (flavour and common) and this host's kbuild tools. Part of the image's cache key.
 */
export async function batmanAdvPackages(kernel: DebPackage, arch: string): Promise<DebPackage[]> {
  const kver = kernelRelease(kernel);
  const abi = kver.replace(/-[a-z0-9]+$/, '');
  const series = kver.match(/^(\d+\.\d+)\./)?.[1];
  if (!series) throw new InfrastructureError(`batman-adv without network coding: cannot read the kernel series from ${kernel.name}`);
  const [source, headers, common, kbuild] = [`linux-source-${series}`, `linux-headers-${kver}`, `linux-headers-${abi}-common`, `linux-kbuild-${series}`];
  // Architecture-independent packages (the source, the common headers) are apt's under this host's architecture.
  const [onArch, onHost] = await Promise.all([aptShowMany([headers], arch), aptShowMany([source, common, kbuild], hostArch)]);
  const pkgs = [onHost.get(source)!, onArch.get(headers)!, onHost.get(common)!, onHost.get(kbuild)!];
  const off = pkgs.find((p) => p.version !== kernel.version);
  if (off) throw new InfrastructureError(`batman-adv without network coding: apt offers ${off.name} ${off.version}, but the kernel is ${kernel.name} ${kernel.version}; run "apt-get update" (scripts/setup.sh does) and try again`);
  return pkgs;
}

/**
 * batman-adv.ko without network coding for `kernel`, built once into the cache from `pkgs` (batmanAdvPackages) with
 * this host's gcc-12 (a cross gcc-12 for arm64). Returns the module's path.
 */
export async function batmanAdvWithoutNc(kernel: DebPackage, pkgs: DebPackage[], arch: string, log: (line: string) => void): Promise<string> {
  const kver = kernelRelease(kernel);
  const key = createHash('sha256').update(pkgs.map((p) => `${p.name}=${p.version}:${p.arch}`).join('\n')).update(await readFile(sourceFile(import.meta.url))).digest('hex').slice(0, 16);
  const dir = cacheDir('modules', `batman-adv-nonc-${kver}-${key}`);
  const built = await buildOnce(dir, false, async (out, work) => {
    log(`building batman-adv without network coding for ${kver} from ${pkgs[0]!.name} ${pkgs[0]!.version} into ${dir}`);
    const [source, headers, common, kbuild] = pkgs as [DebPackage, DebPackage, DebPackage, DebPackage];
    const tree = join(work, 'tree');
    for (const p of [headers, common, kbuild]) await unpackDeb(p, tree);
    // The flavour's Makefile includes the common one by its installed path: point it into this tree.
    const flavour = join(tree, 'usr/src', `linux-headers-${kver}`);
    const mk = join(flavour, 'Makefile');
    await writeFile(mk, (await readFile(mk, 'utf8')).replace(/\/usr\/src\//g, `${join(tree, 'usr/src')}/`));
    // net/batman-adv from the source tarball inside the source package.
    const series = source.name.replace(/^linux-source-/, '');
    const tarball = `usr/src/linux-source-${series}.tar.xz`;
    await execa('sh', ['-c', `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "./$3"`, 'sh', await downloadDeb(source), work, tarball]);
    await execa('tar', ['-xJf', join(work, tarball), '-C', work, `linux-source-${series}/net/batman-adv`]);
    const src = join(work, `linux-source-${series}/net/batman-adv`);
    // CONFIG_BATMAN_ADV_NC=n: network-coding.o is not linked, and its #ifdef blocks (the stubs in network-coding.h)
    // read a symbol that is never defined (the headers' autoconf.h defines CONFIG_BATMAN_ADV_NC, which -U cannot undo).
    for (const f of await readdir(src)) {
      if (!/\.[ch]$|^Makefile$/.test(f)) continue;
      const text = await readFile(join(src, f), 'utf8');
      const next = f === 'Makefile' ? text.replace(/^.*network-coding\.o\n/m, '') : text.replace(/\bCONFIG_BATMAN_ADV_NC\b/g, 'FLEETLAB_BATMAN_ADV_NC_REMOVED');
      if (next !== text) await writeFile(join(src, f), next);
    }
    // Another architecture's module: its GNU triplet's cross tools (gcc-12 through the headers' CC, strip).
    const cross = arch === hostArch ? '' : `${arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu-`;
    const purpose = `building batman-adv without network coding for ${kver}`;
    await runTool('make', ['-s', '-C', flavour, `M=${src}`, ...(cross ? [`CROSS_COMPILE=${cross}`] : []), 'modules'], { purpose, failure: 'make (the batman-adv module) failed' });
    await runTool(`${cross}strip`, ['--strip-debug', '-o', join(out, 'batman-adv.ko'), join(src, 'batman-adv.ko')], { purpose });
    const vermagic = (await readFile(join(out, 'batman-adv.ko'))).toString('latin1').match(/vermagic=([^\0]*)/)?.[1] ?? '';
    if (!vermagic.startsWith(`${kver} `)) throw new InfrastructureError(`${purpose}: the module's vermagic is "${vermagic}", not ${kver}'s`);
    return { module: 'batman-adv.ko', vermagic };
  });
  return join(dir, built.module);
}

/** Puts the module built by batmanAdvWithoutNc in place of the kernel's in `modules` (lib/modules/<kver> of a tree). */
export async function replaceBatmanAdv(modules: string, ko: string): Promise<void> {
  await cp(ko, join(modules, BATMAN_ADV_KO));
}
