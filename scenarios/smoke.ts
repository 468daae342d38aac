// Smoke test of a machine: boot, run commands, check exit codes, log in on the serial console, reboot.
import assert from 'node:assert/strict';
import { scenario } from 'fleetlab';

export const smoke = scenario({
  name: 'smoke',
  machines: { main: 'x86_64-direct' },
  timeout: 5 * 60_000,
  tags: ['smoke'],
  async run({ machines: { main }, step }) {
    await step('commands and exit codes', async () => {
      assert.equal((await main.succeed('echo hello')).trim(), 'hello');
      assert.equal((await main.execute('exit 3')).exitCode, 3);
      assert.equal((await main.execute('no-such-command')).exitCode, 127);
      await main.fail('false');
    });
    await step('hostname is the machine name', async () => {
      assert.equal((await main.succeed('hostname')).trim(), main.name);
    });
    await step('serial login', async () => {
      await main.login();
      await main.sendConsole('echo serial-$((40+2))\n');
      await main.waitForConsoleText(/serial-42/);
    });
    await step('reboot changes the boot id', async () => {
      const before = await main.bootId();
      await main.reboot();
      const after = await main.bootId();
      assert.notEqual(after, before, 'boot id after reboot');
    });
  },
});
