// For report.html's tests: one try of one case written as report.html and opened in Debian's Chromium, its case
// opened, with the page's script errors collected.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { writeHtmlReport } from '../report/html-reporter.ts';
import type { AttemptResult } from '../runner/results.ts';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

/** report.html of `attempt` (case `id`) in `out`, opened; errors: the page's uncaught script errors. close() ends Chromium. */
export async function openCaseReport(out: string, id: string, attempt: AttemptResult): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
  if (!CHROMIUM) throw new Error('Chromium is not installed: apt-get install chromium (scripts/setup.sh does)');
  const [file, rest] = id.split('::') as [string, string];
  const [scenario, variant] = [rest.replace(/\[.*$/, ''), /\[(.*)\]$/.exec(rest)?.[1] ?? ''];
  await writeHtmlReport(join(out, 'report.html'), out, { runId: 'r', startedAt: attempt.startedAt, commit: undefined, finished: true, durationMs: attempt.durationMs, exitCode: 0, interrupted: false, planned: 1, results: [{ id, file, scenario, variant, tags: [], status: attempt.status, durationMs: attempt.durationMs, attempts: [attempt] }] });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`file://${join(out, 'report.html')}`);
  await page.locator('.case .head').click();
  return { page, errors, close: () => browser.close() };
}
