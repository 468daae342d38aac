// An update the way a real NixOS machine takes one: the closure goes over SSH with `nix copy --to ssh://root@…` from
// the host's Nix into the machine's Nix (nix-store --serve), which checks each path's NAR hash and records it with its
// references; the machine's real nix-env makes it generation 2; the boot loader boots it; nixos-rebuild rolls back.
// The machine is the testbed with Nix (testbed: 'x86_64-nix': Debian's Nix 2.8 on its root, its disk's store
// registered in its database, as nixos-install leaves it). Needs Nix on the host (scripts/setup.sh installs nix-bin).
//   fleetlab run scenarios/nix-copy.ts
//   fleetlab run scenarios/nix-copy.ts --machine x86_64-uefi     (the same with systemd-boot)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scenario } from 'fleetlab';

export const nixCopy = scenario({
  name: 'update over nix copy',
  machines: { m: { profile: 'x86_64-bios', testbed: 'x86_64-nix' } },
  ssh: true,
  timeout: 10 * 60_000,
  tags: ['nixos'],
  async run({ machines: { m }, step, property }) {
    const nixos = m.nixos;
    const booted = await step('generation 1 is booted and valid in the machine\'s Nix', async () => {
      const b = await nixos.expectBooted(1);
      await m.succeed(`nix-store --check-validity ${b.toplevel}`);
      const refs = (await m.succeed(`nix-store --query --references ${b.toplevel}`)).trim().split('\n');
      assert.ok(refs.some((r) => /-linux-/.test(r)) && refs.some((r) => /-initrd-linux-/.test(r)), `the toplevel refers to its kernel and initrd: ${refs.join(' ')}`);
      return b;
    });

    const gen2 = await nixos.testbedGeneration({ version: '26.05.2-nix-copy', etc: { 'app.conf': 'version=2\n' } });
    await step('nix copy sends only what the machine lacks, and its Nix verifies it', async () => {
      const t0 = Date.now();
      const r = await nixos.copyClosure(gen2);
      property('nix-copy.ms', Date.now() - t0);
      property('nix-copy.paths', r.copied.length);
      assert.equal(r.via, 'nix');
      // The kernel and initrd are generation 1's: only the new toplevel travels.
      assert.deepEqual(r.copied, [gen2.path]);
      assert.equal(r.present.length, gen2.closure.length - 1);
      await m.succeed(`nix-store --verify-path ${gen2.path}`);
      const refs = (await m.succeed(`nix-store --query --references ${gen2.path}`)).trim().split('\n').sort();
      assert.deepEqual(refs, [...gen2.closure].sort(), 'the references nix copy recorded');
      const again = await nixos.copyClosure(gen2);
      assert.deepEqual(again.copied, [], 'a second copy sends nothing');
    });

    await step("nix-env makes it generation 2, switch-to-configuration boot, reboot: generation 2 is booted", async () => {
      const r = await nixos.switch(gen2, { action: 'boot' });
      assert.equal(r.exitCode, 0);
      assert.match(await m.succeed('nix-env -p /nix/var/nix/profiles/system --list-generations'), /^\s*2\s.*\(current\)\s*$/m);
      await nixos.expectRebooted(1, () => m.reboot());
      await nixos.expectBooted(2);
      assert.equal((await m.succeed('cat /etc/app.conf')).trim(), 'version=2');
    });

    await step('nixos-rebuild boot --rollback, reboot: generation 1 is booted again', async () => {
      await nixos.rollback({ action: 'boot' });
      await nixos.expectRebooted(1, () => m.reboot());
      const b = await nixos.expectBooted(1);
      assert.equal(b.toplevel, booted.toplevel);
      // Generation 2 stays in the store, valid, for a roll forward.
      await m.succeed(`nix-store --check-validity ${gen2.path}`);
    });

    await step('through the shell channel instead, the machine\'s Nix learns the paths as well', async () => {
      const gen3 = await nixos.testbedGeneration({ version: '26.05.3-shell' });
      const r = await nixos.copyClosure(gen3, { via: 'shell' });
      assert.deepEqual([r.via, r.copied], ['shell', [gen3.path]]);
      await m.succeed(`nix-store --verify-path ${gen3.path}`);
    });

    await step('a store path from a Nix store on the host goes the same way', async () => {
      // What you build with nix lands in a store; here a small path is added to a store of its own (a chroot store,
      // so the host's /nix stays untouched) and copied from there (from: a Nix store URL; default the host's store).
      const root = mkdtempSync(join(tmpdir(), 'fleetlab-host-store-'));
      try {
        const src = join(root, 'motd');
        writeFileSync(src, 'built on the host\n');
        const env = { ...process.env, NIX_CONFIG: 'build-users-group =' };
        const path = execFileSync('nix-store', ['--store', `local?root=${root}`, '--add', src], { env, encoding: 'utf8' }).trim();
        const r = await nixos.copyClosure(path, { from: `local?root=${root}` });
        assert.deepEqual([r.via, r.copied], ['nix', [path]]);
        assert.equal((await m.succeed(`cat ${path}`)).trim(), 'built on the host');
        await assert.rejects(nixos.copyClosure('/nix/store/00000000000000000000000000000000-not-built', { from: `local?root=${root}` }), /does not have it/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  },
});
