// scenarios/smoke.ts
import assert from 'node:assert/strict';
import { scenario } from 'fleetlab';

export const smoke = scenario({
  name: 'smoke',
  machines: { main: 'x86_64-direct' },   // role -> profile in machines/
  timeout: 5 * 60_000,                    // the whole scenario; every wait inside stays within it
  tags: ['smoke'],
  async run({ machines: { main }, step }) {
    await step('commands and exit codes', async () => {
      assert.equal((await main.succeed('echo hello')).trim(), 'hello');
      assert.equal((await main.execute('exit 3')).exitCode, 3);
      await main.fail('false');
    });
    await step('serial login', async () => {
      await main.login();                                   // user/password from the profile
      await main.sendConsole('echo serial-$((40+2))\n');
      await main.waitForConsoleText(/serial-42/);
    });
    await step('reboot changes the boot id', async () => {
      const before = await main.bootId();
      await main.reboot();
      assert.notEqual(await main.bootId(), before);
    });
  },
});
