import { rollout, scenario } from 'fleetlab';

export const update = scenario({
  name: 'update and rollback',
  machines: { m: 'x86_64-uefi' },
  async run({ machines: { m }, property }) {
    const gen2 = await m.nixos.testbedGeneration({      // testbed only; on NixOS pass your toplevel's store path
      version: '26.05.2-update',
      services: [{ name: 'app', type: 'simple', command: 'exec my-app' }],
      etc: { 'app.conf': 'version=2\n' },
      packages: [{ name: 'my-app', version: '2.0', files: { 'bin/my-app': '#!/bin/sh\nexec sleep 1d\n' } }], // sw/bin/my-app
    });
    await m.nixos.switch(gen2, { action: 'boot' });     // copies the closure, nix-env --set, switch-to-configuration
    await m.nixos.expectRebooted(1, () => m.reboot());  // from boot ids and QEMU resets
    await m.nixos.expectBooted(2);                      // /run/booted-system is generation 2
    (await m.nixos.bootState()).entries;                // systemd-boot entries with their +LEFT-DONE counters
    await m.nixos.rollback({ action: 'boot' });         // nixos-rebuild boot --rollback
    await m.nixos.bootViaMenu(2);                       // keys into the real GRUB / systemd-boot / U-Boot menu
    await m.nixos.setNextBoot(2);                       // one-shot: LoaderEntryOneShot, grubenv next_entry, extlinux DEFAULT
    const r = await m.nixos.switch(gen2, { action: 'test' });  // r.exitCode 4 + r.failedUnits when units fail
    await m.nixos.switch(gen2, { crashAt: 'bootloader-write' }); // power cut mid-update (testbed points)
  },
});
