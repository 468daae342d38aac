// Browser checks of a device's web page: the testbed serves one on port 80 (busybox httpd, /srv/www); the scenario
// opens it in headless Chromium through a port forwarded to 127.0.0.1, checks its text, submits its form and finds
// the note stored on the device, and finds the page again after a reboot.
//   fleetlab run scenarios/web.ts
import assert from 'node:assert/strict';
import { scenario } from 'fleetlab';

export const web = scenario({
  name: 'device web page',
  machines: { kiosk: 'x86_64-direct' },
  // A restricted NIC that only 127.0.0.1 forwards reach: browser.open() forwards the page's port over it.
  hostLink: true,
  timeout: 5 * 60_000,
  tags: ['web'],
  async run({ machines: { kiosk }, browser, step }) {
    const page = await step('open the device page', () => browser.open(kiosk, { port: 80, path: '/' }));

    await step('the page says what it is', async () => {
      assert.equal(await page.title(), 'fleetlab testbed');
      assert.equal(await page.locator('h1').innerText(), 'fleetlab testbed');
    });

    await step('a note through the form is stored on the device', async () => {
      await page.click('#note-link');
      assert.equal(await page.locator('#host').innerText(), kiosk.name);
      await page.fill('#note-input', 'hello fleet & <friends>');
      await Promise.all([page.waitForURL('**/cgi-bin/note', { timeout: 15_000 }), page.click('#save')]);
      await page.locator('#saved').waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('#note').innerText(), 'hello fleet & <friends>');
      assert.equal((await kiosk.succeed('cat /var/lib/fleetlab-web/note')).trimEnd(), 'hello fleet & <friends>');
    });

    await step('the page after a reboot', async () => {
      const before = await page.locator('#boot-id').innerText();
      await kiosk.reboot();
      await page.goto(page.url(), { timeout: 30_000 });
      const after = await page.locator('#boot-id').innerText();
      assert.notEqual(after, before, 'boot id on the page after the reboot');
      assert.equal(after, await kiosk.bootId());
    });
  },
});
