// A step that panics the guest on purpose (docs/scenarios.md, console checks).
import { scenario } from 'fleetlab';

export const panic = scenario({
  name: 'panic on purpose',
  machines: { main: 'x86_64-direct' },
  async run({ machines: { main } }) {
// #region sample
    const hit = await main.expectPanic(() => main.execute('echo c > /proc/sysrq-trigger'));  // resolves with the panic lines
    await main.waitForShell();                                                                 // panic=-1: it reboots
// #endregion
    hit.line;
  },
});
