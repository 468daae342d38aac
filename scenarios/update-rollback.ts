// Updates and rollbacks the NixOS way, on every boot loader: install generation 2 and boot it; roll back with
// nixos-rebuild --rollback; choose generation 2 in the real boot menu; a generation whose unit fails is reported as
// exit code 4; a broken generation 3 is rolled back automatically (systemd-boot's boot counting where the boot loader
// has it, deploy-rs's magic rollback elsewhere), and the case's properties say which path fired; a generation that
// does not boot at all goes back by boot counting on systemd-boot, by a one-shot trial on GRUB, and through U-Boot's
// menu on extlinux (U-Boot has no fallback of its own). raspi3b boots as NixOS's Pi sd-images do: the firmware
// stand-in loads U-Boot, which reads extlinux. A machine on the firmware-only Pi boot (kernel, initrd and cmdline.txt
// of the current generation on the firmware partition) has no menu, and the case says so.
//   fleetlab run scenarios/update-rollback.ts --machine all    (machines without a NixOS disk are skipped, saying why)
import assert from 'node:assert/strict';
import { scenario } from 'fleetlab';

export const updateRollback = scenario({
  name: 'update and rollback',
  machines: { m: 'x86_64-uefi' },
  timeout: 20 * 60_000,
  tags: ['nixos', 'slow'],
  // Every case starts from generation 2 booted: the first case runs these steps and saves the checkpoint, later ones
  // (another machine of the same shape, --repeat-each, a later run with --keep-snapshots) restore it.
  setup: {
    checkpoint: 'generation 2 booted',
    async run({ machines: { m }, step, skip }) {
      const nixos = m.nixos;
      // A machine that boots a kernel directly (x86_64-direct, x86_64-systemd: `--machine all` takes them too) has no
      // system profile and no boot loader: nothing to update or roll back.
      if ((await m.execute('[ -e /nix/var/nix/profiles/system ] && [ -e /run/booted-system ]', { strict: false })).exitCode !== 0) {
        skip(`${m.profile.name} boots no NixOS system from a disk (no /nix/var/nix/profiles/system, no boot loader): nothing to update or roll back`);
      }
      const bl = await step('generation 1 is booted', async () => {
        await nixos.expectBooted(1);
        await nixos.waitForBootComplete();
        return nixos.bootloader();
      });
      const gen2 = await m.nixos.testbedGeneration({ version: '26.05.2-update', services: [{ name: 'app', type: 'simple', command: 'echo app-v2 > /run/app-version; exec sleep 1000000' }], etc: { 'app.conf': 'version=2\n' } });
      await step('install generation 2 for the next boot, reboot: generation 2 is booted', async () => {
        if (bl === 'systemd-boot') {
          // fleetlab's boot counting (fleetlab.guest.bootCounting; trialBoot says so at once where it is off).
          assert.equal((await nixos.trialBoot(gen2)).generation, 2);
          const e = (await nixos.bootState()).entries.find((x) => x.id === 'nixos-generation-2.conf');
          assert.ok(e && e.triesLeft !== undefined && e.triesLeft > 0, `generation 2's entry is on trial: ${JSON.stringify(e)}`);
        } else {
          assert.equal((await nixos.switch(gen2, { action: 'boot' })).exitCode, 0);
        }
        const before = await nixos.bootState();
        if (bl === 'extlinux') assert.equal(before.default, 'nixos-default');
        await nixos.expectRebooted(1, () => m.reboot());
        await nixos.expectBooted(2);
        assert.equal((await nixos.waitForBootComplete()).healthy, true);
        if (bl === 'systemd-boot') await m.waitUntilSucceeds('grep -q "^default nixos-generation-2.conf" /boot/loader/loader.conf', { timeout: 30_000 });
      });
      return { bl };
    },
  },
  async run({ machines: { m }, setup: { bl }, step, property }) {
    const nixos = m.nixos;
    property('nixos.bootloader', bl);

    await step('generation 2 is booted, healthy, with its app; on systemd-boot blessed', async () => {
      await nixos.expectBooted(2);
      assert.equal((await m.succeed('cat /run/app-version /etc/app.conf')).trim(), 'app-v2\nversion=2');
      if (bl === 'systemd-boot') {
        const after = await nixos.bootState();
        assert.deepEqual(after.entries.map((e) => e.file).sort(), ['nixos-generation-1.conf', 'nixos-generation-2.conf'], 'generation 2 blessed: its counter gone');
      }
    });

    await step('list-generations --json: two generations, 2 current', async () => {
      const gens = await nixos.generations();
      assert.deepEqual(gens.map((g) => [g.generation, g.nixosVersion, g.current]), [[2, '26.05.2-update', true], [1, '26.05.1-testbed', false]]);
      assert.match(gens[0]!.kernelVersion, /^\d+\.\d+/);
    });

    await step('nixos-rebuild boot --rollback, reboot: generation 1 is booted', async () => {
      await nixos.rollback({ action: 'boot' });
      assert.equal((await nixos.current()).generation, 1);
      await nixos.expectRebooted(1, () => m.reboot());
      await nixos.expectBooted(1);
      assert.equal((await m.execute('cat /run/app-version')).exitCode, 1, "generation 1 has no app");
    });

    if (bl === 'raspi-firmware') {
      // NixOS's firmware-only Pi boot has no menu: fleetlab says so rather than pretend.
      await step('no boot menu on the Pi firmware: bootViaMenu refuses, naming the way that exists', async () => {
        await assert.rejects(nixos.bootViaMenu(2), /has no menu to choose from .*switch the profile instead/);
      });
    } else {
      await step('generation 2 chosen in the real boot menu', async () => {
        await nixos.bootViaMenu(2);
        await nixos.expectBooted(2);
      });
    }

    if (bl === 'systemd-boot' || bl === 'grub') {
      await step('one-shot: generation 2 for the next boot only, then the default again', async () => {
        // The profile is on generation 1 (rolled back); 2 is chosen through LoaderEntryOneShot / grubenv next_entry.
        await nixos.setNextBoot(2);
        const state = await nixos.bootState();
        assert.ok(state.oneShot && /2/.test(state.oneShot), `one-shot entry set: ${JSON.stringify(state)}`);
        await nixos.expectRebooted(1, () => m.reboot());
        await nixos.expectBooted(2);
        assert.equal((await nixos.bootState()).oneShot, undefined, 'the one-shot entry is used up');
        await m.reboot();
        await nixos.expectBooted(1);
      });
    }

    await step('a generation whose unit fails: switch exits 4 and names the unit', async () => {
      const failing = await m.nixos.testbedGeneration({ version: '26.05.3-failing-unit', services: [{ name: 'migrate', command: 'echo migration failed >&2; exit 1' }] });
      const r = await nixos.switch(failing, { action: 'test' });
      assert.equal(r.exitCode, 4);
      assert.equal(r.ok, false);
      assert.deepEqual(r.failedUnits, ['migrate.service']);
      // Back to what the profile says (test left it alone).
      await m.succeed('/nix/var/nix/profiles/system/bin/switch-to-configuration test');
    });

    await step('a broken generation 3 is rolled back automatically', async () => {
      await nixos.rollback({ action: 'switch' }).catch(() => undefined); // the profile back on a good generation
      const broken = await m.nixos.testbedGeneration({ version: '26.05.3-broken', services: [{ name: 'app', command: 'echo app-v3 cannot start >&2; exit 1' }] });
      if (bl === 'systemd-boot') {
        // Boot counting (fleetlab's NixOS module's script): installed on trial; every boot of it is unhealthy and
        // reboots; when no tries are left, systemd-boot boots the newest good generation.
        const newest = (await nixos.trialBoot(broken)).generation;
        // The newest generation with a good entry before it: 2, blessed when it booted.
        const good = 2;
        await m.reboot().catch(() => undefined);
        const b = await nixos.waitForGeneration(good, { timeout: 8 * 60_000 });
        const state = await nixos.bootState();
        const entry = state.entries.find((e) => e.id === `nixos-generation-${newest}.conf`);
        assert.equal(entry?.triesLeft, 0, `the broken entry has no tries left: ${JSON.stringify(state.entries)}`);
        assert.ok(entry!.triesDone! > 0);
        property('rollback.path', 'boot-counting');
        property('rollback.boots', m.boots);
        assert.equal(b.generation, good);
        await step('a generation that does not boot at all (its init missing) is rolled back by boot counting too', async () => {
          const noInit = await m.nixos.testbedGeneration({ version: '26.05.4-no-init', broken: 'no-init', kernelParams: ['boot.panic_on_fail', 'panic=1'] });
          const newest = (await nixos.trialBoot(noInit)).generation;
          const boots = m.boots;
          // Each try fails in stage 1 ("stage 2 init script … not found"); with boot.panic_on_fail stage 1 exits and
          // the kernel panics (a console check fleetlab would otherwise fail the case on), and panic=1 reboots it:
          // expected here, once per try. This is what NixOS's stage 1 does (nixpkgs' test instrumentation sets both).
          for (let t = 0; t < 2; t++) {
            m.console().mark();
            await m.expectConsoleCheck('kernel-panic', () => (t === 0 ? m.reboot({ timeout: 120_000 }) : m.waitForConsoleText(/stage 2 init script \(.*\) not found/, { timeout: 120_000 })), { timeout: 150_000 });
          }
          const b = await nixos.waitForGeneration(2, { timeout: 8 * 60_000 });
          assert.equal(b.generation, 2);
          assert.ok(m.boots - boots >= 3, `stage 1 failed on each try, then the good generation booted (${m.boots - boots} boots)`);
          const entry = (await nixos.bootState()).entries.find((e) => e.id === `nixos-generation-${newest}.conf`);
          assert.equal(entry?.triesLeft, 0, 'the entry that does not boot has no tries left');
          property('rollback.no-init.path', 'boot-counting');
        });
      } else {
        // Magic rollback: the health check fails, nothing confirms, the guest switches back by itself.
        const before = (await nixos.current()).generation;
        const r = await nixos.switchWithMagicRollback(broken, {
          confirmWithinMs: 10_000,
          healthCheck: async () => (await nixos.failedUnits()).length === 0,
        });
        assert.equal(r.activation, 4, 'the broken generation activated with a failed unit');
        assert.equal(r.confirmed, false);
        assert.equal(r.rolledBack, true);
        assert.equal((await nixos.current()).generation, before);
        property('rollback.path', 'magic-rollback');
        if (bl === 'grub') {
          await step('a generation that does not boot at all (its init missing) is tried once by GRUB and rolled back by its default', async () => {
            const noInit = await m.nixos.testbedGeneration({ version: '26.05.4-no-init', broken: 'no-init', kernelParams: ['boot.panic_on_fail', 'panic=1'] });
            const trial = await nixos.trialBoot(noInit);
            assert.equal(trial.previous, before);
            const state = await nixos.bootState();
            assert.ok(state.oneShot?.includes(`Configuration ${trial.generation} `), `grubenv next_entry names the trial: ${JSON.stringify(state)}`);
            const boots = m.boots;
            // The trial fails in stage 1 and the kernel panics (expected here), panic=1 reboots; GRUB's default is
            // the previous generation again, and it comes up.
            m.console().mark();
            await m.expectConsoleCheck('kernel-panic', () => m.reboot({ timeout: 240_000 }), { timeout: 250_000 });
            const b = await nixos.waitForGeneration(before, { timeout: 4 * 60_000 });
            assert.equal(b.generation, before);
            assert.ok(m.boots - boots >= 2, `the trial failed, then the previous generation booted (${m.boots - boots} boots)`);
            assert.equal((await nixos.bootState()).oneShot, undefined, 'the one-shot entry is used up');
            assert.equal((await nixos.current()).generation, before, 'the profile stayed on the previous generation');
            property('rollback.no-init.path', 'grub-one-shot');
          });
        } else if (bl === 'extlinux') {
          await step("a generation that does not boot at all (its init missing): U-Boot has no fallback of its own, so it is rescued through U-Boot's menu", async () => {
            const noInit = await m.nixos.testbedGeneration({ version: '26.05.4-no-init', broken: 'no-init', kernelParams: ['boot.panic_on_fail', 'panic=1'] });
            await nixos.switch(noInit, { action: 'boot' });
            const boots = m.boots;
            // The default now fails in stage 1 on every boot, the kernel panicking (expected here).
            let rescue!: Promise<unknown>;
            await m.expectConsoleCheck('kernel-panic', () => (rescue = nixos.rescueViaMenu(before, { timeout: 360_000 })), { timeout: 360_000 });
            await rescue;
            assert.ok(m.boots - boots >= 2, `the default failed, then the previous generation booted from the menu (${m.boots - boots} boots)`);
            assert.equal((await nixos.current()).generation, before, 'the profile is back on the previous generation');
            // It stays: the next boot without a hand on the menu is the previous generation.
            await m.reboot();
            await nixos.expectBooted(before);
            property('rollback.no-init.path', 'menu-rescue');
          });
        }
      }
    });
  },
});
