// A generation that does not boot at all, recovered at the boot loader's console, as an engineer at the serial line
// would: the board is power-cycled, U-Boot's autoboot interrupted, commands run at its prompt, and the previous
// generation booted from its extlinux menu; then the profile is rolled back so it stays. Runs on a U-Boot VM and on
// the virtual lab's boards (real U-Boot behind a pty):
//   fleetlab run scenarios/boot-loader-recovery.ts
//   fleetlab run scenarios/boot-loader-recovery.ts --lab lab/example-virtual.ts --machine tag:virtual
import assert from 'node:assert/strict';
import { scenario, uboot } from 'fleetlab';

export const bootLoaderRecovery = scenario({
  name: 'boot-loader recovery',
  machines: { board: 'aarch64-uboot' },
  timeout: '15m',
  tags: ['nixos', 'boot-loader', 'slow'],
  async run({ machines: { board }, step, property }) {
    const good = await step('the running generation is the good one', async () => (await board.nixos.current()).generation);

    const broken = await step('install a generation whose init is missing, as the next boot', async () => {
      const noInit = await board.nixos.testbedGeneration({ version: '26.05.9-no-init', broken: 'no-init', kernelParams: ['boot.panic_on_fail', 'panic=1'] });
      await board.nixos.switch(noInit, { action: 'boot' });
      return (await board.nixos.current()).generation;
    });

    await step(`power-cycle: generation ${broken} does not boot, stage 1 fails`, async () => {
      await board.crash();
      await board.start();
      // Stage 1 exits (boot.panic_on_fail) and the kernel panics, as NixOS's does: expected here, fleetlab's
      // kernel-panic check would otherwise end the case.
      await board.expectConsoleCheck('kernel-panic', () => board.waitForConsoleText(/stage 2 init script .* not found/, { timeout: '5m' }), { timeout: '5m' });
    });

    const loader = uboot(board);
    await step('power-cycle and interrupt autoboot at the U-Boot console', async () => {
      await board.crash();
      await board.start();
      await loader.interrupt({ timeout: '2m' });
    });

    await step('commands at the U-Boot prompt', async () => {
      assert.match(await loader.succeed('version'), /U-Boot \d{4}\.\d{2}/);
      const targets = await loader.succeed('printenv boot_targets');
      assert.match(targets, /^boot_targets=/);
      const missing = await loader.run('printenv fleetlab_no_such_variable');
      assert.notEqual(missing.exitCode, 0, `printenv of a variable that is not set fails: ${missing.output}`);
      property('uboot.boot_targets', targets.replace(/^boot_targets=/, ''));
    });

    await step(`boot generation ${good} from U-Boot's extlinux menu`, async () => {
      const chosen = await loader.bootMenuEntry(new RegExp(`Configuration ${good} `), { timeout: '2m' });
      property('uboot.chosen', `${chosen.choice}: ${chosen.title}`);
      await board.waitForShell({ timeout: '5m' });
      await board.nixos.expectBooted(good);
    });

    await step(`roll the profile back to generation ${good}; the next boot takes it by itself`, async () => {
      await board.nixos.rollback({ action: 'boot' });
      assert.equal((await board.nixos.current()).generation, good);
      await board.reboot({ timeout: '5m' });
      await board.nixos.expectBooted(good);
    });
  },
});
