// NixOS nodes declared in Nix (fleetlab.lib.mkFleetlabTest, nix/lib/mk-fleetlab-test.nix) as a scenario's machines:
// the manifest it writes (result/fleetlab.json) names each node's profile, image or kernel, and toplevel.
//   machines: fromManifest('./result/fleetlab.json', ['client', 'router', 'server'])
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { MachineRequest } from './scenario.ts';

const NodeEntry = z
  .object({
    profile: z.string().min(1),
    system: z.string().min(1),
    format: z.enum(['raw-efi', 'raw-bios', 'iso', 'sd-image', 'kernel']),
    toplevel: z.string().regex(/^\/nix\/store\/[^/]+$/, 'a store path (/nix/store/<hash>-<name>)'),
    image: z.string().min(1).optional(),
    kernel: z.string().min(1).optional(),
    initrd: z.string().min(1).optional(),
    append: z.string().optional(),
  })
  .strict();
const Manifest = z.object({ version: z.literal(1), name: z.string(), nodes: z.record(z.string().regex(/^[a-zA-Z0-9_-]+$/), NodeEntry) }).strict();

/** One node of a manifest: its profile, what it boots (paths resolved against the manifest's folder) and its toplevel. */
export type ManifestNode = z.infer<typeof NodeEntry>;
/** A manifest as mkFleetlabTest writes it, its paths resolved. */
export type FleetlabManifest = z.infer<typeof Manifest> & { path: string };

/**
 * Reads and checks a manifest (result/fleetlab.json): a ConfigurationError names the file and the field, and says to
 * build it (`nix build .#<test>`) when it is missing.
 */
export function loadManifest(path: string): FleetlabManifest {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigurationError(`fleetlab manifest ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): build it first (nix build .#<your test>, which runs fleetlab.lib.mkFleetlabTest and links result/fleetlab.json)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigurationError(`fleetlab manifest ${file} is not JSON: ${(err as Error).message}`);
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigurationError(`fleetlab manifest ${file}: ${issues.join('; ')} (mkFleetlabTest writes version 1 with nodes.<name>.{profile, system, format, toplevel, image | kernel, initrd, append})`);
  }
  const at = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(dirname(file), p));
  const nodes = Object.fromEntries(
    Object.entries(parsed.data.nodes).map(([name, n]) => [name, { ...n, image: at(n.image), kernel: at(n.kernel), initrd: at(n.initrd) }]),
  );
  return { ...parsed.data, nodes, path: file };
}

/**
 * A scenario's machines from a manifest: each named node (all of them when `nodes` is left out) as
 * `{ profile, image }` or `{ profile, kernel, initrd, append }`. A node that is not there, or has no image (a
 * toplevelOnly node), is a ConfigurationError naming the manifest's nodes.
 */
export function fromManifest<const N extends string>(path: string, nodes?: readonly N[]): Record<N, MachineRequest> {
  const m = loadManifest(path);
  const names = (nodes ?? Object.keys(m.nodes)) as readonly N[];
  const out = {} as Record<N, MachineRequest>;
  for (const name of names) {
    const n = m.nodes[name];
    if (!n) throw new ConfigurationError(`fleetlab manifest ${m.path} has no node "${name}" (it has: ${Object.keys(m.nodes).join(', ') || 'none'})`);
    if (n.image) out[name] = { profile: n.profile, image: n.image };
    else if (n.kernel) out[name] = { profile: n.profile, kernel: n.kernel, initrd: n.initrd, append: n.append };
    else if (nodes) throw new ConfigurationError(`fleetlab manifest ${m.path}: node "${name}" has no image (toplevelOnly): it is a configuration to switch to (toplevel ${n.toplevel}), not a machine`);
  }
  return out;
}
