// A VM's screen through QMP: screenshots (screendump), key presses (send-key) and the screen's text by OCR
// (tesseract on a screendump). The `screen` capability of a QemuMachine.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TimeoutError } from '../errors/fleetlab-error.ts';
import { toPattern } from '../console/stream-console.ts';
import type { Screen } from '../protocols/screen.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom, pollUntil } from '../time/deadline.ts';
import { runTool } from './host-packages.ts';
import { comboToQcodes, textToCombos } from './qemu-keys.ts';
import type { QmpClient } from './qmp.ts';

/** What the screen needs of its machine. */
export interface ScreenHost {
  readonly name: string;
  /** The machine's folder in the case's output. */
  readonly logDir: string;
  /** The running machine's QMP, or the error that says why there is none. */
  requireQmp(what: string): QmpClient;
  /** 'artifact': a file in its folder offered to the case's report (the runner attaches it). */
  emit(event: 'artifact', artifact: { name: string; path: string }): boolean;
  readonly log: { lastLines(n?: number): string[] };
}

export class QemuScreen implements Screen {
  private readonly m: ScreenHost;

  constructor(host: ScreenHost) {
    this.m = host;
  }

  /** Writes a PNG of the screen (QMP screendump): a bare name into the machine's folder, attached; a path as given. */
  async screenshot(nameOrPath: string): Promise<string> {
    const bare = !nameOrPath.includes('/');
    const file = bare ? join(this.m.logDir, nameOrPath.endsWith('.png') ? nameOrPath : `${nameOrPath}.png`) : resolve(nameOrPath);
    await this.m.requireQmp('screenshot').execute('screendump', { filename: file, format: 'png' });
    if (bare) this.m.emit('artifact', { name: `${this.m.name}-screenshot-${nameOrPath.replace(/\.png$/, '')}.png`, path: file });
    return file;
  }

  /** The screen's text by OCR: a screendump read by tesseract (Debian's tesseract-ocr, English). */
  async text(opts?: WaitOptions): Promise<string> {
    const png = join(tmpdir(), `fleetlab-ocr-${this.m.name}-${randomBytes(4).toString('hex')}.png`);
    try {
      await this.m.requireQmp('read the screen').execute('screendump', { filename: png, format: 'png' });
      const deadline = deadlineFrom(opts, 60_000, `OCR of ${this.m.name}'s screen`);
      return await runTool('tesseract', [png, 'stdout'], { purpose: `reading ${this.m.name}'s screen (OCR)`, timeout: Math.max(1000, deadline.remaining()) });
    } finally {
      await rm(png, { force: true });
    }
  }

  /** Waits until the screen's text matches `pattern`, reading it by OCR every 2 s; a timeout quotes the last reading. */
  async waitForText(pattern: RegExp | string, opts?: WaitOptions & { literal?: boolean }): Promise<RegExpExecArray> {
    const re = toPattern(pattern, !!opts?.literal, `the screen of ${this.m.name}`);
    const awaited = `the screen of ${this.m.name} to show ${re} (OCR)`;
    const deadline = deadlineFrom(opts, 900_000, `wait for ${awaited}`, 'pass { timeout } to waitForText');
    let last = '';
    const res = await pollUntil(
      async () => {
        // Each reading gets its own budget (text()'s 60 s), not what is left of the wait: a reading cut short would end
        // the wait as a tesseract failure instead of saying what the screen last showed.
        last = await this.text();
        return re.exec(last) ?? undefined;
      },
      { deadline, intervalMs: 2000, signal: opts?.signal, awaited },
    );
    if (!res.timedOut) return res.value;
    const read = last.split('\n').map((l) => l.trim()).filter(Boolean).slice(-8);
    throw new TimeoutError('test-failure', { awaited: `${awaited}; it last read: ${read.length ? read.map((l) => `"${l}"`).join(' | ') : 'nothing'}`, deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20) });
  }

  /** Presses key combos such as "ctrl-alt-delete", "ret", "a". */
  async sendKeys(...combos: string[]): Promise<void> {
    const qmp = this.m.requireQmp('sendKeys');
    for (const combo of combos) await qmp.execute('send-key', { keys: comboToQcodes(combo).map((k) => ({ type: 'qcode', data: k })) });
  }

  /** Types `text` as key presses. */
  async typeText(text: string): Promise<void> {
    const qmp = this.m.requireQmp('typeText');
    for (const keys of textToCombos(text)) await qmp.execute('send-key', { keys: keys.map((k) => ({ type: 'qcode', data: k })) });
  }
}
