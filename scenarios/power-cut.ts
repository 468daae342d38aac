// Power cuts during an update: the power goes after the closure is copied, after the profile link moves, in the
// middle of the boot loader's write (a half-written entry or menu beside the real one) and in the middle of the
// activation. Each time the machine must boot a complete generation, old or new, never neither: the boot loader's
// files whole, the profile links pointing at complete toplevels, and data synced before the cut still there. On
// GRUB, a corrupt and a truncated grubenv (a cut during GRUB's own save_env) must not keep it from booting.
//   fleetlab run scenarios/power-cut.ts --machine x86_64-bios --machine x86_64-uefi --machine aarch64-uboot
import assert from 'node:assert/strict';
import { scenario, type Machine } from 'fleetlab';

const POINTS = ['after-copy', 'after-profile', 'bootloader-write', 'activation'] as const;

/** Every system profile link points at a complete toplevel, and the boot loader's files are whole. */
async function consistent(m: Machine): Promise<void> {
  await m.succeed('for l in /nix/var/nix/profiles/system /nix/var/nix/profiles/system-*-link; do t=$(readlink -f "$l"); [ -x "$t/init" ] && [ -x "$t/bin/switch-to-configuration" ] || { echo "$l -> $t is incomplete" >&2; exit 1; }; done');
  const bl = await m.nixos.bootloader();
  if (bl === 'systemd-boot') {
    // Every entry names a kernel and an initrd that are there; a half-written one never lies among the entries.
    await m.succeed('cd /boot/loader/entries && for f in *.conf; do k=$(sed -n "s/^linux //p" "$f"); i=$(sed -n "s/^initrd //p" "$f"); [ -n "$k" ] && [ -e "/boot$k" ] && [ -n "$i" ] && [ -e "/boot$i" ] || { echo "$f is not a whole entry" >&2; exit 1; }; done');
  } else if (bl === 'grub') {
    await m.succeed('tail -n 1 /boot/grub/grub.cfg | grep -qx "}" && grep -q "NixOS - Default" /boot/grub/grub.cfg');
  } else {
    await m.succeed('grep -q "^DEFAULT " /boot/extlinux/extlinux.conf && tail -n 1 /boot/extlinux/extlinux.conf | grep -qE "APPEND |FDTDIR "');
  }
}

export const powerCut = scenario({
  name: 'power cut during an update',
  machines: { m: 'x86_64-uefi' },
  timeout: 20 * 60_000,
  tags: ['nixos', 'slow'],
  async run({ machines: { m }, step, property }) {
    for (const [k, point] of POINTS.entries()) {
      await step(`power cut ${point}: a complete generation boots, synced data kept`, async () => {
        const before = (await m.nixos.booted()).generation!;
        const gen = await m.nixos.testbedGeneration({ version: `26.05.${k + 2}-cut-${point}`, etc: { 'cut-point': `${point}\n` } });
        await m.succeed(`mkdir -p /var/lib/app && echo ${point} > /var/lib/app/data-${k} && sync`);
        const r = await m.nixos.switch(gen, { action: 'switch', crashAt: point });
        assert.equal(r.exitCode, -1, 'the power was cut');
        await m.start();
        await m.waitForShell({ timeout: 180_000 });
        const booted = await m.nixos.booted();
        assert.ok(booted.generation !== undefined, `the booted system ${booted.toplevel} is a generation of the profile`);
        // Until the boot loader's menu is replaced whole, the old generation boots; from the activation on, the new.
        const newGeneration = (await m.nixos.current()).generation;
        const expected = point === 'activation' ? newGeneration : before;
        assert.equal(booted.generation, expected, `after a cut ${point}, generation ${expected} boots`);
        await consistent(m);
        assert.equal((await m.succeed(`cat /var/lib/app/data-${k}`)).trim(), point, 'data synced before the cut is there');
        property(`cut.${point}.booted`, booted.generation!);
        await m.nixos.waitForBootComplete();
      });
    }
    if ((await m.nixos.bootloader()) === 'grub') {
      await step('a corrupt, then a truncated grubenv: GRUB still boots the default generation', async () => {
        const current = (await m.nixos.current()).generation;
        await m.succeed('head -c 1024 /dev/urandom > /boot/grub/grubenv && sync');
        assert.equal((await m.nixos.bootState()).grubenvValid, false);
        await m.reboot();
        await m.nixos.expectBooted(current);
        await m.succeed('printf "# GRUB Environment Block\nnext_entry=NixOS - All con" > /boot/grub/grubenv && sync');
        assert.equal((await m.nixos.bootState()).grubenvValid, false);
        await m.reboot();
        await m.nixos.expectBooted(current);
        // fleetlab's writer makes it whole again, as grub-editenv would.
        await m.nixos.writeGrubenv({ saved_entry: '0' });
        assert.equal((await m.nixos.bootState()).grubenvValid, true);
      });
    }
  },
});
