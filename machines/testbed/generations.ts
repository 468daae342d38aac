// NixOS system generations for the testbed, built on the host: the testbed's stand-in for `nix build
// .#nixosConfigurations.<host>.config.system.build.toplevel`. A toplevel is a small tree in a store directory laid out
// as NixOS lays it out (/nix/store/<hash>-nixos-system-<host>-<version>: init, activate, kernel, initrd,
// kernel-params, nixos-version, boot.json in bootspec v1, bin/switch-to-configuration, etc/, specialisation/), whose
// scripts are the testbed's stand-ins (machines/testbed/nixos), sw/bin links into its packages' store paths. Its closure
// is the kernel's and initrd's store paths, its packages' and itself; the harness copies the paths a machine lacks (copyClosure), as `nix copy` does for real NixOS.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfigurationError } from '../../harness/errors/fleetlab-error.ts';
import { sourceDir } from '../../harness/package-files.ts';
import type { GenerationSpec, Toplevel } from '../../harness/nixos/generation.ts';
import type { TestbedImage } from '../../harness/qemu/testbed-source.ts';

const SCRIPTS = join(sourceDir(import.meta.url), 'nixos');

export type { GenerationSpec, PackageSpec, ServiceSpec, Toplevel } from '../../harness/nixos/generation.ts';

/** Nix's base-32 alphabet: store hashes look like real ones (32 characters, no e, o, u or t). */
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
export function storeHash(...parts: Array<string | Buffer>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  const d = h.digest();
  let out = '';
  for (let i = 0; i < 32; i++) out += NIX32[d[i]! % 32];
  return out;
}

/** Store paths of the testbed's kernel and initrd (shared by every generation of one image). */
export function kernelPaths(image: TestbedImage, arch: 'amd64' | 'arm64'): { kernel: string; initrd: string; kernelFile: string; dtbs?: string } {
  const kernelFile = arch === 'arm64' ? 'Image' : 'bzImage';
  return {
    kernel: `/nix/store/${storeHash('kernel', image.key)}-linux-${image.kernelVersion}`,
    initrd: `/nix/store/${storeHash('initrd', image.key)}-initrd-linux-${image.kernelVersion}`,
    kernelFile,
    // Device trees as NixOS keeps them (<dtbs>/broadcom/<name>.dtb), where the image has any.
    dtbs: Object.keys(image.deviceTrees).length ? `/nix/store/${storeHash('dtbs', image.key)}-device-tree-overlays` : undefined,
  };
}

/** Builds the toplevel of `spec` for testbed `image` under `into` (a directory that becomes the closure's root). */
export async function buildGeneration(image: TestbedImage, arch: 'amd64' | 'arm64', spec: GenerationSpec, into: string): Promise<Toplevel> {
  const host = spec.host ?? 'testbed';
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._+-]*$/.test(spec.version)) throw new ConfigurationError(`generation version "${spec.version}": use letters, digits and . _ + - (it is part of a store path name)`);
  if (!/^[a-zA-Z0-9-]+$/.test(host)) throw new ConfigurationError(`generation host "${host}": use letters, digits and - (a host name)`);
  for (const s of spec.services ?? []) {
    if (!/^[a-zA-Z0-9_-]+$/.test(s.name)) throw new ConfigurationError(`generation ${spec.version}: service name "${s.name}": use letters, digits, - and _`);
    if (/\n/.test(s.command)) throw new ConfigurationError(`generation ${spec.version}: service ${s.name}: the command must be one line`);
  }
  const packages: string[] = [];
  for (const pkg of spec.packages ?? []) {
    if (!/^[a-zA-Z][a-zA-Z0-9_+-]*$/.test(pkg.name) || /-\d/.test(pkg.name)) throw new ConfigurationError(`generation ${spec.version}: package name "${pkg.name}": start with a letter, use letters, digits, _ + and -, no dash before a digit (Nix would read a version there)`);
    if (!/^\d[a-zA-Z0-9._+-]*$/.test(pkg.version)) throw new ConfigurationError(`generation ${spec.version}: package ${pkg.name}: version "${pkg.version}" must start with a digit (letters, digits, . _ + -)`);
    const p = `/nix/store/${storeHash('package', pkg.name, pkg.version, JSON.stringify(pkg.files))}-${pkg.name}-${pkg.version}`;
    for (const [rel, text] of Object.entries(pkg.files)) {
      if (rel.startsWith('/') || rel.split('/').includes('..')) throw new ConfigurationError(`generation ${spec.version}: package ${pkg.name}: file "${rel}" must be a relative path`);
      await mkdir(dirname(join(into, p, rel)), { recursive: true });
      await writeFile(join(into, p, rel), text, { mode: rel.startsWith('bin/') ? 0o755 : 0o644 });
    }
    packages.push(p);
  }
  const k = kernelPaths(image, arch);
  const system = arch === 'arm64' ? 'aarch64-linux' : 'x86_64-linux';
  const scripts = await Promise.all(['init', 'activate', 'switch-to-configuration', 'fleetlab-install-bootloader', 'fleetlab-boot-counting'].map((f) => readFile(join(SCRIPTS, f))));
  const hash = storeHash('toplevel', image.key, JSON.stringify(spec), ...scripts);
  const path = `/nix/store/${hash}-nixos-system-${host}-${spec.version}`;
  const storeDir = join(into, 'nix/store');
  const top = join(into, path);
  // The kernel and initrd store paths (hard to tell from a copy, so copied once per root).
  for (const [p, src, file] of [[k.kernel, image.kernelImage, k.kernelFile], [k.initrd, image.stage1, 'initrd']] as const) {
    if (existsSync(join(into, p, file))) continue;
    await mkdir(join(into, p), { recursive: true });
    await copyFile(src, join(into, p, file));
  }
  if (k.dtbs && !existsSync(join(into, k.dtbs))) {
    await mkdir(join(into, k.dtbs, 'broadcom'), { recursive: true });
    for (const [name, file] of Object.entries(image.deviceTrees)) await copyFile(file, join(into, k.dtbs, 'broadcom', name));
  }
  const tmp = `${top}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'bin'), { recursive: true });
  await mkdir(join(tmp, 'specialisation'));
  if (spec.broken !== 'no-init') await writeFile(join(tmp, 'init'), scripts[0]!, { mode: 0o755 });
  await writeFile(join(tmp, 'activate'), scripts[1]!, { mode: 0o755 });
  await writeFile(join(tmp, 'bin/switch-to-configuration'), scripts[2]!, { mode: 0o755 });
  await writeFile(join(tmp, 'bin/fleetlab-install-bootloader'), scripts[3]!, { mode: 0o755 });
  await writeFile(join(tmp, 'bin/fleetlab-boot-counting'), scripts[4]!, { mode: 0o755 });
  await symlink(`${k.kernel}/${k.kernelFile}`, join(tmp, 'kernel'));
  await symlink(`${k.initrd}/initrd`, join(tmp, 'initrd'));
  if (k.dtbs) await symlink(k.dtbs, join(tmp, 'dtbs'));
  if (packages.length) await mkdir(join(tmp, 'sw/bin'), { recursive: true });
  for (const [i, pkg] of (spec.packages ?? []).entries()) {
    for (const rel of Object.keys(pkg.files).filter((f) => /^bin\/[^/]+$/.test(f))) await symlink(`${packages[i]}/${rel}`, join(tmp, 'sw', rel));
  }
  const params = [...(spec.kernelParams ?? [])];
  await writeFile(join(tmp, 'kernel-params'), params.join(' '));
  await writeFile(join(tmp, 'nixos-version'), spec.version);
  await writeFile(join(tmp, 'system'), system);
  if (spec.configurationRevision) await writeFile(join(tmp, 'configuration-revision'), spec.configurationRevision);
  await writeFile(join(tmp, 'services'), (spec.services ?? []).map((s) => `${s.name} ${s.type ?? 'oneshot'} ${s.command}\n`).join(''));
  await mkdir(join(tmp, 'etc'));
  const etc = { hostname: `${host}\n`, ...(spec.etc ?? {}) };
  for (const [rel, text] of Object.entries(etc)) {
    if (rel.startsWith('/') || rel.split('/').includes('..')) throw new ConfigurationError(`generation ${spec.version}: etc file "${rel}" must be a relative path under /etc`);
    await mkdir(dirname(join(tmp, 'etc', rel)), { recursive: true });
    await writeFile(join(tmp, 'etc', rel), text);
  }
  const bootspec = {
    'org.nixos.bootspec.v1': {
      system,
      init: `${path}/init`,
      initrd: `${k.initrd}/initrd`,
      kernel: `${k.kernel}/${k.kernelFile}`,
      kernelParams: params,
      label: `NixOS ${spec.version} (Linux ${image.kernelVersion})`,
      toplevel: path,
    },
    'org.nixos.specialisation.v1': {},
  };
  await writeFile(join(tmp, 'boot.json'), JSON.stringify(bootspec, null, 2) + '\n');
  if (spec.bootloader) {
    const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
    await writeFile(join(tmp, 'bootloader.conf'), Object.entries(spec.bootloader).map(([key, v]) => `${key}=${quote(v)}`).join('\n') + '\n');
  }
  await rm(top, { recursive: true, force: true });
  await mkdir(storeDir, { recursive: true });
  await rename(tmp, top);
  return { path, root: into, closure: [k.kernel, k.initrd, ...(k.dtbs ? [k.dtbs] : []), ...(spec.extraClosure ?? []), ...packages, path], spec };
}
