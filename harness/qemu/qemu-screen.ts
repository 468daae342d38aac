// A VM's screen through QMP: screenshots (screendump) and key presses (send-key). The `screen` capability of a QemuMachine.
import { join, resolve } from 'node:path';
import type { Screen } from '../protocols/screen.ts';
import { comboToQcodes, textToCombos } from './qemu-keys.ts';
import type { QmpClient } from './qmp.ts';

export class QemuScreen implements Screen {
  private readonly qmp: (what: string) => QmpClient;
  private readonly folder: () => { dir: string; attach: (name: string, path: string) => void };

  /**
   * `qmp(what)`: the running machine's QMP, or the error that says why there is none; `folder()`: the machine's
   * folder in the case's output and how a file there is attached to the report.
   */
  constructor(qmp: (what: string) => QmpClient, folder: () => { dir: string; attach: (name: string, path: string) => void }) {
    this.qmp = qmp;
    this.folder = folder;
  }

  /** Writes a PNG of the screen (QMP screendump): a bare name into the machine's folder, attached; a path as given. */
  async screenshot(nameOrPath: string): Promise<string> {
    const bare = !nameOrPath.includes('/');
    const f = this.folder();
    const file = bare ? join(f.dir, nameOrPath.endsWith('.png') ? nameOrPath : `${nameOrPath}.png`) : resolve(nameOrPath);
    await this.qmp('screenshot').execute('screendump', { filename: file, format: 'png' });
    if (bare) f.attach(`screenshot-${nameOrPath.replace(/\.png$/, '')}.png`, file);
    return file;
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
