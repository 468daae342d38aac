// The virtual lab's serial line (a stand-in's own behaviour, which the lab tests lean on): what is typed on the
// board's pseudo-terminal reaches the VM powered on again at once, as on one wire, even while the end of the VM
// powered off is still closing. The test plays the VMs' end of the line (QEMU's `-chardev socket`): no guest boots.
import { mkdtemp, open as openFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startVirtualLab, type VirtualLab } from './virtual-lab.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const joined = (path: string) =>
  new Promise<Socket>((ok, fail) => {
    const s = connect(path, () => ok(s));
    s.once('error', fail);
  });

describe('virtual lab serial line', () => {
  let lab: VirtualLab | undefined;
  afterAll(async () => lab?.close());

  it('delivers a line typed 0.25 s after a power cycle to the VM powered on again, every time', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-vlab-line-'));
    const card = join(dir, 'card.img');
    await writeFile(card, Buffer.alloc(1024 * 1024));
    lab = await startVirtualLab({ dir: join(dir, 'lab'), boards: [{ name: 'vb', port: 0 }], cardImage: async () => card });
    const board = lab.boards.get('vb')!;
    const tty = await openFile(board.tty, 'r+');
    try {
      const lost: number[] = [];
      for (let i = 0; i < 10; i++) {
        const before = await joined(board.sock); // the VM powered on
        await sleep(100);
        before.destroy(); // its plug pulled
        await sleep(200); // the plug's off delay
        const after = await joined(board.sock); // powered on again
        const got: Buffer[] = [];
        after.on('data', (d: Buffer) => got.push(d));
        await sleep(50);
        const line = `version ${i}\n`;
        await tty.write(line);
        for (let t = 0; t < 40 && Buffer.concat(got).toString() !== line; t++) await sleep(25);
        if (Buffer.concat(got).toString() !== line) lost.push(i);
        after.destroy();
        await sleep(50);
      }
      expect(lost, 'lines the VM powered on again did not get').toEqual([]);
    } finally {
      await tty.close();
    }
  }, 60_000);
});
