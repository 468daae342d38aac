// A VM's screen through QMP: screenshots (screendump) and key presses (send-key). The `screen` capability of a QemuMachine.
import { isAbsolute, resolve } from 'node:path';
import type { Screen } from '../protocols/screen.ts';
import { comboToQcodes, textToCombos } from './qemu-keys.ts';
import type { QmpClient } from './qmp.ts';

export class QemuScreen implements Screen {
  private readonly qmp: (what: string) => QmpClient;

  /** `qmp(what)`: the running machine's QMP, or the error that says why there is none. */
  constructor(qmp: (what: string) => QmpClient) {
    this.qmp = qmp;
  }

  /** Writes a PNG of the screen (QMP screendump). */
  async screenshot(path: string): Promise<void> {
    await this.qmp('screenshot').execute('screendump', { filename: isAbsolute(path) ? path : resolve(path), format: 'png' });
  }

  /** Presses key combos such as "ctrl-alt-delete", "ret", "a". */
  async sendKeys(...combos: string[]): Promise<void> {
    const qmp = this.qmp('sendKeys');
    for (const combo of combos) await qmp.execute('send-key', { keys: comboToQcodes(combo).map((k) => ({ type: 'qcode', data: k })) });
  }

  /** Types `text` as key presses. */
  async typeText(text: string): Promise<void> {
    const qmp = this.qmp('typeText');
    for (const keys of textToCombos(text)) await qmp.execute('send-key', { keys: keys.map((k) => ({ type: 'qcode', data: k })) });
  }
}
