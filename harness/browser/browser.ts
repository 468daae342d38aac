// Browser checks for the web UIs of fleet devices (dashboards, captive portals, kiosk pages): a Playwright page
// (playwright-core) on the host's own Chromium, opened on a machine's port forwarded to 127.0.0.1.
// One browser per case, started on the first open(): a supervised child like QEMU (dies with the runner, even by
// SIGKILL), reached over the DevTools protocol. Its pages reach 127.0.0.1 only: the host resolver maps every name to
// nothing and every request to another host is aborted and logged. A failed case gets a screenshot of each open page
// and a Playwright trace (npx playwright show-trace trace.zip) among its attachments.
import { durationMs, type Duration } from '../time/duration.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { need, type Machine } from '../protocols/machine.ts';
import { spawnSupervised, type SupervisedProcess } from '../process/supervisor.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import { Deadline, raceDeadline } from '../time/deadline.ts';

/** Where a page opens: a guest TCP port (forwarded with machine.forwardPort) and a path. */
export interface BrowserOpenOptions {
  /** The guest's TCP port. Default 80. */
  port?: number;
  /** Path and query. Default '/'. */
  path?: string;
  /** How long the first load may take: ms, or a string with a unit ('45s'). Default 30 s. */
  timeout?: Duration;
}

/** The scenario context's browser. */
export interface BrowserChecks {
  /** A new page (its own context: cookies and storage) showing `path` on `machine`'s `port`, loaded. */
  open(machine: Machine, opts?: BrowserOpenOptions): Promise<Page>;
}

/** Candidate Chromium executables: $FLEETLAB_CHROMIUM, then Debian's and others' names for it. */
const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium fleetlab drives, or undefined when the host has none. */
export function findChromium(): string | undefined {
  const named = process.env.FLEETLAB_CHROMIUM;
  if (named) return named;
  return CHROMIUM_PATHS.find((p) => existsSync(p));
}

const START_MS = 30_000;

/** One case's browser: pages opened by the scenario, their traces, and the Chromium behind them. */
export class CaseBrowser implements BrowserChecks {
  private proc: SupervisedProcess | undefined;
  private browser: Browser | undefined;
  private starting: Promise<Browser> | undefined;
  private profileDir: string | undefined;
  private readonly pages: Array<{ page: Page; context: BrowserContext; label: string }> = [];

  private readonly opts: { logDir: string; log: (line: string) => void; signal?: AbortSignal };

  constructor(opts: { logDir: string; log: (line: string) => void; signal?: AbortSignal }) {
    this.opts = opts;
  }

  async open(machine: Machine, o: BrowserOpenOptions = {}): Promise<Page> {
    const port = o.port ?? 80;
    const path = o.path ?? '/';
    if (!path.startsWith('/')) throw new ConfigurationError(`browser.open(${machine.name}, { path: ${JSON.stringify(path)} }): a path starts with "/"`);
    const hostPort = await need(machine, 'hostLink', 'browser.open()').forwardPort(port);
    const browser = await (this.starting ??= this.start());
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.tracing.start({ screenshots: true, snapshots: true, title: `${machine.name}:${port}${path}` });
    // Nothing but this machine's forwards and the host's loopback: a device page that calls out fails visibly.
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
      this.opts.log(`[${new Date().toISOString()}] browser: blocked a request to ${url.href} (pages reach only 127.0.0.1)`);
      return route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    const label = `${machine.name}-${port}-${this.pages.length + 1}`;
    this.pages.push({ page, context, label });
    const url = `http://127.0.0.1:${hostPort}${path}`;
    this.opts.log(`[${new Date().toISOString()}] browser: opening ${url} (${machine.name} port ${port})`);
    const timeout = o.timeout === undefined ? 30_000 : durationMs(o.timeout, `the timeout of browser.open(${machine.name})`);
    const deadline = Deadline.after(timeout, `page ${path} of ${machine.name} port ${port} to load`);
    // The guest's server may still be starting: connection refused is retried until the deadline.
    for (;;) {
      try {
        await page.goto(url, { timeout: Math.max(1000, deadline.remaining()) });
        return page;
      } catch (err) {
        const refused = /ERR_CONNECTION_(REFUSED|RESET|CLOSED)|ERR_EMPTY_RESPONSE/.test(String((err as Error).message));
        if (!refused || deadline.remaining() < 500) {
          throw new InfrastructureError(`browser: ${url} (${machine.name} port ${port}) did not load within ${timeout / 1000} s: ${(err as Error).message.split('\n')[0]}`, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  /** Chromium headless with a throwaway profile, then Playwright over its DevTools endpoint. */
  private async start(): Promise<Browser> {
    const exe = findChromium();
    if (!exe) throw new ConfigurationError('browser checks need Chromium, which is not installed: apt-get install chromium (fleetlab setup does), or set FLEETLAB_CHROMIUM to its path');
    const { chromium } = await import('playwright-core');
    this.profileDir = await makeTempDir('fleetlab-chromium-');
    let endpoint: (url: string) => void = () => undefined;
    const listening = new Promise<string>((r) => (endpoint = r));
    const args = [
      '--headless=new',
      '--remote-debugging-port=0',
      `--user-data-dir=${this.profileDir}`,
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      'about:blank',
    ];
    const proc = spawnSupervised('chromium', exe, args, {
      onLine: (_stream, line) => {
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (m) endpoint(m[1]!);
      },
    });
    this.proc = proc;
    const ready = await raceDeadline(Promise.race([listening, proc.exited.then(() => undefined)]), START_MS, this.opts.signal);
    if (ready.timedOut || !ready.value) {
      const tail = proc.stderrTail().trim().split('\n').slice(-5).join('\n  ');
      await proc.stop();
      throw new InfrastructureError(`Chromium (${exe}) did not open its DevTools endpoint within ${START_MS / 1000} s${proc.running ? '' : ' (it exited)'}:\n  ${tail}`);
    }
    this.browser = await chromium.connectOverCDP(ready.value, { timeout: START_MS });
    return this.browser;
  }

  /**
   * Ends the case's browsing: on failure a screenshot of each open page and the trace go into the log folder and
   * are returned as attachments; then pages, Playwright and Chromium are closed.
   */
  async finish(failed: boolean): Promise<Array<{ name: string; path: string }>> {
    const artifacts: Array<{ name: string; path: string }> = [];
    for (const { page, context, label } of this.pages) {
      if (failed) {
        const shot = join(this.opts.logDir, `browser-${label}.png`);
        const trace = join(this.opts.logDir, `browser-${label}.trace.zip`);
        if (await page.screenshot({ path: shot, fullPage: true, timeout: 10_000 }).then(() => true, () => false)) artifacts.push({ name: `browser-${label}.png`, path: shot });
        if (await context.tracing.stop({ path: trace }).then(() => true, () => false)) artifacts.push({ name: `browser-${label}.trace.zip`, path: trace });
      } else {
        await context.tracing.stop().catch(() => undefined);
      }
      await context.close().catch(() => undefined);
    }
    await this.close();
    return artifacts;
  }

  /** Closes Playwright's connection and stops Chromium; safe to call twice. */
  async close(): Promise<void> {
    await raceDeadline(this.browser?.close() ?? Promise.resolve(), 5000).catch(() => undefined);
    this.browser = undefined;
    await this.proc?.stop().catch(() => undefined);
    this.proc = undefined;
    if (this.profileDir) await removeTempDir(this.profileDir).catch(() => undefined);
    this.profileDir = undefined;
  }
}
