// Browser checks (docs/scenarios.md).
import assert from 'node:assert/strict';
import { need, scenario } from 'fleetlab';

// #region sample
export const web = scenario({
  name: 'device web page',
  machines: { kiosk: 'x86_64-direct' },
  hostLink: true,
  async run({ machines: { kiosk }, browser, step }) {
    const page = await browser.open(kiosk, { port: 80, path: '/' });   // http://127.0.0.1:<forwarded>/
    assert.equal(await page.title(), 'fleetlab testbed');
    await page.fill('#note-input', 'hello');
    await page.click('#save');
    const port = await need(kiosk, 'hostLink').forwardPort(8080);      // any guest TCP port, for your own client
  },
});
// #endregion
