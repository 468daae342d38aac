// A setup checkpoint (docs/scenarios.md).
import { scenario } from 'fleetlab';

// #region sample
export const rollback = scenario({
  name: 'rollback from generation 2',
  machines: { m: 'x86_64-uefi' },
  setup: {
    checkpoint: 'generation 2 booted',
    async run({ machines: { m }, step }) {
      const gen2 = await m.nixos.testbedGeneration({ version: '26.05.2', etc: { 'app.conf': 'version=2\n' } });
      await step('switch to generation 2 and boot it', async () => {
        await m.nixos.switch(gen2, { action: 'boot' });
        await m.reboot();
        await m.nixos.expectBooted(2);
      });
      return { bootloader: await m.nixos.bootloader() }; // JSON, saved with the checkpoint
    },
  },
  async run({ machines: { m }, setup, step, property }) {
    property('bootloader', setup.bootloader); // what setup.run returned, whether it ran here or was restored
    await step('roll back', async () => {
      await m.nixos.rollback({ action: 'boot' });
      await m.reboot();
      await m.nixos.expectBooted(1);
    });
  },
});
// #endregion
