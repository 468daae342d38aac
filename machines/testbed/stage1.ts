// Stage 1's initrd of the testbed's NixOS-shaped generations: what /init needs to mount the root and switch to it,
// and nothing of the system itself, as NixOS's own initrd (boot.initrd: its kernel modules, an extra-utils with the
// tools of stage 1, the init script) holds only that. The direct-boot profiles' initrd is the whole system and stays
// so; the generations' boot files (and their store path in every closure) are this one: about 10 MB instead of 27,
// which a boot loader reads on every boot (GRUB through the BIOS, systemd-boot through the firmware: seconds under
// TCG) and an install copies.
import { copyFile, lstat, mkdir, readFile, readdir, readlink, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { runTool } from '../../harness/qemu/host-packages.ts';
import { moduleName, readModulesDep } from './modules.ts';

/** Files of the system tree stage 1 runs: /init (stage 1 when root= is given), busybox, the module list, first-boot. */
const FILES = ['init', 'bin/busybox', 'etc/fleetlab/modules', 'etc/fleetlab/first-boot'];
/** Programs /etc/fleetlab/first-boot runs in stage 1 (an SD image's first-boot resize), with their libraries. */
const PROGRAMS = ['sbin/sfdisk', 'sbin/resize2fs'];
/** Where the tree keeps shared libraries, searched in this order for a program's NEEDED entries. */
const LIB_DIRS = ['lib/x86_64-linux-gnu', 'lib/aarch64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'usr/lib/aarch64-linux-gnu', 'lib', 'usr/lib', 'lib64'];

/** What stage 1 takes from the tree: files to copy, and symlinks to make as the tree has them (path -> target). */
interface Picked {
  files: Set<string>;
  links: Map<string, string>;
}

/**
 * Copies from the system tree `root` into `dest` what stage 1 uses: FILES, the boot modules (/etc/fleetlab/modules)
 * with their dependencies and the module index files, PROGRAMS with their libraries and loader (by readelf), and the
 * directories /init mounts on.
 */
export async function stage1Tree(root: string, kernelVersion: string, dest: string): Promise<void> {
  const picked: Picked = { files: new Set(FILES), links: new Map() };
  const modDir = `lib/modules/${kernelVersion}`;
  const { deps, byName } = await readModulesDep(join(root, modDir));
  for (const m of (await readFile(join(root, 'etc/fleetlab/modules'), 'utf8')).split('\n').filter(Boolean)) {
    const path = byName.get(moduleName(m));
    if (!path) throw new InfrastructureError(`testbed stage 1: boot module ${m} is not in ${modDir}/modules.dep of the system tree`);
    for (const p of [path, ...(deps.get(path) ?? [])]) picked.files.add(`${modDir}/${p}`);
  }
  for (const f of await readdir(join(root, modDir))) if (f.startsWith('modules.')) picked.files.add(`${modDir}/${f}`);
  for (const program of PROGRAMS) if (existsSync(join(root, program))) await withLibraries(root, program, picked);
  for (const rel of picked.files) {
    await mkdir(dirname(join(dest, rel)), { recursive: true });
    await copyFile(join(root, rel), join(dest, rel));
  }
  for (const [rel, target] of picked.links) {
    await mkdir(dirname(join(dest, rel)), { recursive: true });
    await symlink(target, join(dest, rel));
  }
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'newroot', 'sbin', 'usr/bin', 'usr/sbin']) await mkdir(join(dest, d), { recursive: true });
}

/** Adds `program` and, transitively, the shared libraries it needs and its loader (as the tree has them). */
async function withLibraries(root: string, program: string, picked: Picked): Promise<void> {
  const queue = [program];
  while (queue.length) {
    const rel = await resolved(root, queue.pop()!, picked);
    if (picked.files.has(rel)) continue;
    picked.files.add(rel);
    const out = await runTool('readelf', ['-d', '-l', '-W', join(root, rel)], { purpose: "building the testbed's stage-1 initrd" });
    const interp = /Requesting program interpreter: ([^\]]+)\]/.exec(out)?.[1];
    if (interp) queue.push(interp.replace(/^\//, ''));
    for (const [, lib] of out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)) {
      const dir = LIB_DIRS.find((d) => existsSync(join(root, d, lib!)));
      if (!dir) throw new InfrastructureError(`testbed stage 1: ${program} needs ${lib}, which is in none of ${LIB_DIRS.join(', ')} of the system tree`);
      queue.push(posix.join(dir, lib!));
    }
  }
}

/**
 * The file a path of the tree comes to: a symlink on the way (libfdisk.so.1 -> libfdisk.so.1.1.0, /lib64's loader ->
 * lib/x86_64-linux-gnu) is kept in `picked.links` to be made in the initrd as the tree has it.
 */
async function resolved(root: string, rel: string, picked: Picked): Promise<string> {
  const st = await lstat(join(root, rel));
  if (!st.isSymbolicLink()) return rel;
  const target = await readlink(join(root, rel));
  picked.links.set(rel, target);
  return resolved(root, posix.normalize(target.startsWith('/') ? target.slice(1) : posix.join(posix.dirname(rel), target)), picked);
}
