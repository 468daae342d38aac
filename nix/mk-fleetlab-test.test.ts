// NixOS nodes declared in Nix: fleetlab.lib.mkFleetlabTest (nix/lib/mk-fleetlab-test.nix) evaluated with nixpkgs'
// lib, each node's modules through lib.evalModules (nix/tests/eval-fleetlab-test.nix; building images needs nixpkgs,
// which this host lacks), and the manifest it writes loaded by fromManifest() as a scenario's machines.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../harness/errors/fleetlab-error.ts';
import { which } from '../harness/qemu/host-packages.ts';
import { fromManifest, loadManifest } from '../harness/runner/manifest.ts';

const root = join(import.meta.dirname, '..');
const nixLib = process.env.FLEETLAB_NIXPKGS_LIB;
const missing = !which('nix-instantiate') ? 'nix-instantiate is not installed (Debian package nix-bin; scripts/setup.sh installs it)' : !nixLib || !existsSync(join(nixLib, 'default.nix')) ? 'no nixpkgs lib: set FLEETLAB_NIXPKGS_LIB to a nixpkgs lib/ directory (scripts/test.sh unpacks ../shared/vendor/nixpkgs-lib-*.tar.gz when it is there)' : undefined;
if (missing) console.warn(`nix/mk-fleetlab-test.test.ts: the Nix evaluation tests skip: ${missing}`);
const nixEnv = { NIX_CONFIG: 'build-users-group =', NIX_REMOTE: '' };

interface Evaluated {
  manifest: { version: number; name: string; nodes: Record<string, Record<string, string>> };
  manifestText: string;
  links: Array<{ name: string; path: string }>;
  hostNames: Record<string, string>;
}

/** Evaluates mkFleetlabTest with `args` (a Nix expression). */
async function evaluate(args: string): Promise<{ ok: true; value: Evaluated } | { ok: false; stderr: string }> {
  const expr = `import ${join(root, 'nix/tests/eval-fleetlab-test.nix')} { lib = import ${nixLib}; args = ${args}; }`;
  const r = await execa('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { env: nixEnv, reject: false });
  return r.exitCode === 0 ? { ok: true, value: JSON.parse(r.stdout) as Evaluated } : { ok: false, stderr: r.stderr };
}

const NAT_NODES = `{
  name = "nat";
  nodes = {
    server = { services.httpd.enable = true; };
    client = { profile = "aarch64-uefi"; modules = [ ({ lib, ... }: { networking.hostName = "c1"; }) ]; };
    router = { profile = "x86_64-direct"; modules = [ { networking.nat.enable = true; } ]; };
    routerDummyNoNat = { toplevelOnly = true; modules = [ { networking.nat.enable = false; } ]; };
    pi = { profile = "raspi3b"; modules = [ ]; };
  };
}`;

describe.skipIf(missing)('mkFleetlabTest, evaluated', () => {
  it("builds every node in its profile's format and writes a manifest: images, kernels, toplevels; toplevelOnly nodes get no image", async () => {
    const r = await evaluate(NAT_NODES);
    if (!r.ok) throw new Error(r.stderr);
    const { manifest, manifestText, links, hostNames } = r.value;
    expect(JSON.parse(manifestText)).toEqual(manifest);
    expect(manifest.version).toBe(1);
    expect(manifest.name).toBe('nat');
    // Each node evaluated with its own modules: its name as hostName unless it sets one.
    expect(hostNames).toEqual({ server: 'server', client: 'c1', router: 'router', routerDummyNoNat: 'routerDummyNoNat', pi: 'pi' });
    const top = (host: string) => expect.stringMatching(new RegExp(`^/nix/store/[0-9a-f]{32}-nixos-system-${host}$`));
    expect(manifest.nodes).toEqual({
      server: { profile: 'x86_64-uefi', system: 'x86_64-linux', format: 'raw-efi', image: 'server/nixos.img', toplevel: top('server') },
      client: { profile: 'aarch64-uefi', system: 'aarch64-linux', format: 'raw-efi', image: 'client/nixos.img', toplevel: top('c1') },
      router: { profile: 'x86_64-direct', system: 'x86_64-linux', format: 'kernel', kernel: 'router/kernel', initrd: 'router/initrd', append: `init=${manifest.nodes.router!.toplevel}/init console=ttyS0`, toplevel: top('router') },
      routerDummyNoNat: { profile: 'x86_64-uefi', system: 'x86_64-linux', format: 'raw-efi', toplevel: top('routerDummyNoNat') },
      pi: { profile: 'raspi3b', system: 'aarch64-linux', format: 'sd-image', image: 'pi/sd-image/nixos-sd-image-aarch64-linux.img', toplevel: top('pi') },
    });
    expect(manifest.nodes.router!.toplevel).not.toBe(manifest.nodes.routerDummyNoNat!.toplevel);
    // result/: a link per node with an image, and the manifest.
    expect(links.map((l) => l.name).sort()).toEqual(['client', 'fleetlab.json', 'pi', 'router', 'server']);

    // The manifest as a scenario loads it.
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-manifest-'));
    await writeFile(join(dir, 'fleetlab.json'), manifestText);
    const machines = fromManifest(join(dir, 'fleetlab.json'), ['server', 'router']);
    expect(machines).toEqual({
      server: { profile: 'x86_64-uefi', image: join(dir, 'server/nixos.img') },
      router: { profile: 'x86_64-direct', kernel: join(dir, 'router/kernel'), initrd: join(dir, 'router/initrd'), append: manifest.nodes.router!.append },
    });
    expect(Object.keys(fromManifest(join(dir, 'fleetlab.json'))).sort()).toEqual(['client', 'pi', 'router', 'server']);
    expect(loadManifest(join(dir, 'fleetlab.json')).nodes.routerDummyNoNat!.toplevel).toBe(manifest.nodes.routerDummyNoNat!.toplevel);
    expect(() => fromManifest(join(dir, 'fleetlab.json'), ['routerDummyNoNat'])).toThrow(/node "routerDummyNoNat" has no image \(toplevelOnly\): it is a configuration to switch to/);
  }, 60_000);

  it('refuses an unknown profile, an unknown node attribute and a bad node name, naming the node', async () => {
    const bad = async (nodes: string) => {
      const r = await evaluate(`{ nodes = ${nodes}; }`);
      expect(r.ok).toBe(false);
      return r.ok ? '' : r.stderr;
    };
    expect(await bad('{ a = { profile = "x86_64-vax"; modules = [ ]; }; }')).toMatch(/node a: profile "x86_64-vax" has no NixOS image format here; use one of: .*x86_64-uefi/);
    expect(await bad('{ a = { profile = "x86_64-uefi"; modules = [ ]; image = "x"; }; }')).toMatch(/node a: unknown attribute image; a node is a NixOS module, or \{ profile; modules; toplevelOnly; \}/);
    expect(await bad('{ "a b" = { }; }')).toMatch(/node name "a b": use letters, digits, - and _/);
  }, 60_000);
});

describe('loadManifest', () => {
  const write = async (text: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-manifest-'));
    await writeFile(join(dir, 'fleetlab.json'), text);
    return join(dir, 'fleetlab.json');
  };
  const node = { profile: 'x86_64-uefi', system: 'x86_64-linux', format: 'raw-efi', image: 'server/nixos.img', toplevel: '/nix/store/aaaa-nixos-system-server' };

  it('says to build a missing manifest, and names the field that is wrong', async () => {
    expect(() => loadManifest('/nonexistent/result/fleetlab.json')).toThrow(ConfigurationError);
    expect(() => loadManifest('/nonexistent/result/fleetlab.json')).toThrow(/cannot be read \(ENOENT\): build it first \(nix build/);
    expect(() => loadManifest('/dev/null')).toThrow(/is not JSON/);
    const wrongTop = await write(JSON.stringify({ version: 1, name: 't', nodes: { server: { ...node, toplevel: 'result/server' } } }));
    expect(() => loadManifest(wrongTop)).toThrow(/nodes\.server\.toplevel: a store path/);
    const wrongVersion = await write(JSON.stringify({ version: 2, name: 't', nodes: {} }));
    expect(() => loadManifest(wrongVersion)).toThrow(/version: /);
    const extra = await write(JSON.stringify({ version: 1, name: 't', nodes: { server: { ...node, memory: 4 } } }));
    expect(() => loadManifest(extra)).toThrow(/nodes\.server: Unrecognized key.*memory/);
  });

  it('resolves relative paths against its folder and names the nodes it has when one is missing', async () => {
    const path = await write(JSON.stringify({ version: 1, name: 't', nodes: { server: node, abs: { ...node, image: '/srv/images/abs.img' } } }));
    expect(fromManifest(path, ['server', 'abs'])).toEqual({ server: { profile: 'x86_64-uefi', image: join(path, '..', 'server/nixos.img') }, abs: { profile: 'x86_64-uefi', image: '/srv/images/abs.img' } });
    expect(() => fromManifest(path, ['client'])).toThrow(/has no node "client" \(it has: server, abs\)/);
  });
});
