// Host-side Nix store plumbing for closures that were not built by Nix: a directory laid out as a store (<root>/nix/
// store/<hash>-<name>, as the testbed's generations are) registered in a Nix database of its own with the host's
// nix-store, so real Nix (`nix copy`, nix-store --serve on the guest) moves and verifies it like any closure. The NAR
// hashes and sizes come from `nix-store --dump`, the references from scanning the files for store hashes, as Nix
// itself finds them.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { runTool } from '../qemu/host-packages.ts';

/** Bumped when how a closure is registered changes: disk images with a registered store are rebuilt. */
export const REGISTRATION_VERSION = 1;

/** A Nix store path: /nix/store/<32 base-32 characters>-<name>. */
export const STORE_PATH = /^\/nix\/store\/[0123456789abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]+$/;

/**
 * Settings for every host Nix command fleetlab runs: no build users (nothing is built; the store is root's), and the
 * nix-command feature for `nix copy` (experimental in Nix 2.8).
 */
export function nixEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { NIX_CONFIG: ['build-users-group =', 'experimental-features = nix-command', process.env.NIX_CONFIG ?? ''].join('\n'), ...extra };
}

let probed: Promise<{ version: string } | undefined> | undefined;

/** Whether the host has Nix's commands (nix and nix-store), and which version (asked once per process). */
export function hostNix(): Promise<{ version: string } | undefined> {
  probed ??= execa('nix', ['--version'], { reject: false, env: nixEnv() }).then(
    (r) => {
      const v = r.exitCode === 0 ? /(\d+\.\d+[^\s]*)/.exec(r.stdout)?.[1] : undefined;
      return v ? { version: v } : undefined;
    },
    () => undefined,
  );
  return probed;
}

/** The NAR serialisation's SHA-256 (nix-store --dump, as Nix hashes a path) and byte count of `dir`. */
async function narOf(dir: string): Promise<{ hash: string; size: number }> {
  const child = execa('nix-store', ['--dump', dir], { buffer: false, env: nixEnv(), reject: false });
  const h = createHash('sha256');
  let size = 0;
  child.stdout!.on('data', (b: Buffer) => {
    h.update(b);
    size += b.length;
  });
  const r = await child;
  if ((r as { code?: string }).code === 'ENOENT') throw new ConfigurationError('fleetlab needs nix-store to register a closure for Nix: apt-get install nix-bin (scripts/setup.sh does).', { details: { tool: 'nix-store', package: 'nix-bin' } });
  if (r.exitCode !== 0) throw new InfrastructureError(`nix-store --dump ${dir} failed (exit ${r.exitCode}): ${String(r.stderr).trim()}`);
  return { hash: `sha256:${h.digest('hex')}`, size };
}

/** Every file's bytes and every symlink's target under `dir` (or `dir` itself), for the reference scan. */
async function* contents(dir: string): AsyncGenerator<Buffer> {
  const st = await lstat(dir);
  if (st.isSymbolicLink()) {
    yield Buffer.from(await readlink(dir));
    return;
  }
  if (st.isFile()) {
    yield await readFile(dir);
    return;
  }
  for (const e of await readdir(dir)) yield* contents(join(dir, e));
}

/**
 * The references of each path of `closure` among the others (and itself), found as Nix finds them: a path refers to
 * another when the other's hash part appears in its files or symlink targets.
 */
export async function scanReferences(root: string, closure: string[]): Promise<Map<string, string[]>> {
  const hashes = closure.map((p) => [p, p.slice('/nix/store/'.length, '/nix/store/'.length + 32)] as const);
  const refs = new Map<string, string[]>();
  for (const p of closure) {
    const found = new Set<string>();
    for await (const chunk of contents(join(root, p))) {
      for (const [q, h] of hashes) if (!found.has(q) && chunk.includes(h)) found.add(q);
      if (found.size === hashes.length) break;
    }
    refs.set(p, closure.filter((q) => found.has(q)));
  }
  return refs;
}

/** Registration texts already made, by root and closure. */
const registered = new Map<string, string>();

/**
 * Registration of `closure` (store paths under `root`) in the format `nix-store --load-db` reads and NixOS's images
 * carry as /nix-path-registration: path, NAR hash, NAR size, deriver (none), references.
 */
export async function registration(root: string, closure: string[]): Promise<string> {
  for (const p of closure) if (!STORE_PATH.test(p)) throw new ConfigurationError(`"${p}" is no Nix store path (/nix/store/<32 base-32 characters>-<name>)`);
  // A store path's contents never change: one closure under one root is dumped and scanned once per process (a
  // switch() copies what copyClosure() just copied, and each copy would hash the initrd again).
  const key = `${root}\0${closure.join('\0')}`;
  let text = registered.get(key);
  if (!text) {
    const refs = await scanReferences(root, closure);
    const out: string[] = [];
    for (const p of closure) {
      const nar = await narOf(join(root, p));
      const r = refs.get(p)!;
      out.push(p, nar.hash, String(nar.size), '', String(r.length), ...r);
    }
    text = out.join('\n') + '\n';
    registered.set(key, text);
  }
  return text;
}

/** The Nix store URL of a store directory laid out under `root` (<root>/nix/store): a chroot store. */
export function chrootStore(root: string): string {
  return `local?root=${root}`;
}

/**
 * Registers `closure` in the Nix database of the store under `root` (<root>/nix/var/nix/db), as nixos-install and
 * NixOS's image builders register a system's closure: afterwards Nix there knows the paths as valid, with their
 * hashes and references.
 */
export async function registerClosure(root: string, closure: string[]): Promise<void> {
  const input = await registration(root, closure);
  await runTool('nix-store', ['--store', chrootStore(root), '--load-db'], { input, env: nixEnv(), purpose: `registering ${closure.length} store path(s) under ${root}`, failure: `nix-store --load-db under ${root} failed` });
}
