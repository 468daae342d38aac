// The switch itself, with real UDP sockets on 127.0.0.1 standing where QEMU's -netdev dgram ends would be:
// learning, reordering and duplication counted frame by frame, and link conditions checked when they are set.
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Fabric, type NicPlan } from './fabric.ts';

const mac = (m: string) => Buffer.from(m.replace(/:/g, ''), 'hex');
const frame = (dst: string, src: string, seq: number) => {
  const f = Buffer.concat([mac(dst), mac(src), Buffer.from([0x88, 0xb5]), Buffer.alloc(46)]);
  f.writeUInt32BE(seq, 14);
  return f;
};

interface End {
  plan: NicPlan;
  socket: Socket;
  got: number[];
}

async function end(plan: NicPlan): Promise<End> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(plan.qemuPort, '127.0.0.1', () => r()));
  const e: End = { plan, socket, got: [] };
  socket.on('message', (m) => e.got.push(m.readUInt32BE(14)));
  return e;
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function pair(): Promise<{ fabric: Fabric; x: End; y: End; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-fabric-'));
  const fabric = new Fabric({ lan: ['x', 'y'] }, { pcapDir: dir });
  const x = await end((await fabric.plan('t', 'x'))[0]!);
  const y = await end((await fabric.plan('t', 'y'))[0]!);
  cleanup.push(() => fabric.close(), () => void x.socket.close(), () => void y.socket.close());
  // y speaks first: the switch learns where y is.
  y.socket.send(frame('ff:ff:ff:ff:ff:ff', y.plan.mac, 0xffffffff), y.plan.switchPort, '127.0.0.1');
  await until(() => x.got.length === 1);
  return { fabric, x, y, dir };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sends n numbered frames from x to y, `burst` at a time with a turn of the event loop between bursts. */
async function send(x: End, y: End, n: number, burst = 8): Promise<void> {
  for (let k = 0; k < n; k++) {
    x.socket.send(frame(y.plan.mac, x.plan.mac, k), x.plan.switchPort, '127.0.0.1');
    if (k % burst === burst - 1) await new Promise((r) => setImmediate(r));
  }
}

describe('fabric switch', () => {
  it('forwards a learnt destination to its port alone, in order, and captures every frame', async () => {
    const { fabric, x, y, dir } = await pair();
    await send(x, y, 200);
    await until(() => y.got.length === 200);
    expect(y.got).toEqual([...Array(200).keys()]);
    await fabric.close();
    // 24-byte header, then 201 records of 16 + 60 bytes.
    expect((await readFile(join(dir, 'lan.pcap'))).length).toBe(24 + 201 * 76);
  });

  it('reorder: frames held back are overtaken by later ones, and counted', async () => {
    const { fabric, x, y } = await pair();
    fabric.network('lan').setLink('x', 'y', { reorder: 0.3 }, { oneWay: true });
    // Bursts of 20 frames sent at once: a frame held back is overtaken by the rest of its burst whatever the host's
    // load, since the burst reaches the switch within one turn of its event loop and a hold lasts longer than that.
    await send(x, y, 300, 20);
    await until(() => y.got.length === 300);
    // A frame was overtaken when one sent after it arrived before it.
    let highest = -1;
    const overtaken = y.got.filter((s) => (s < highest ? true : ((highest = s), false))).length;
    const stats = fabric.network('lan').linkStats('x', 'y');
    expect(stats.reordered).toBeGreaterThan(40);
    expect(overtaken).toBeGreaterThan(30);
    expect(overtaken).toBeLessThanOrEqual(stats.reordered);
    expect([...y.got].sort((a, b) => a - b)).toEqual([...Array(300).keys()]);
  });

  it('duplicate: each frame picked arrives twice, and is counted', async () => {
    const { fabric, x, y } = await pair();
    fabric.network('lan').setLink('x', 'y', { duplicate: 0.5 }, { oneWay: true });
    await send(x, y, 200);
    const stats = () => fabric.network('lan').linkStats('x', 'y');
    await until(() => y.got.length === 200 + stats().duplicated);
    expect(stats().duplicated).toBeGreaterThan(60);
    expect(stats().duplicated).toBeLessThan(140);
    expect(new Set(y.got).size).toBe(200);
  });

  it('refuses conditions out of range, naming the network, link and field', async () => {
    const { fabric } = await pair();
    const lan = fabric.network('lan');
    expect(() => lan.setLink('x', 'y', { loss: 1.5 })).toThrow(/network lan: link x-y: loss = 1.5; expected a probability from 0 to 1/);
    expect(() => lan.setLink('x', 'y', { delayMs: -1 })).toThrow(/delayMs = -1; expected a number >= 0/);
    expect(() => lan.setLink('x', 'y', { lossy: 1 } as never)).toThrow(/unknown condition "lossy"/);
    expect(() => lan.setLink('x', 'z', { loss: 0 })).toThrow(/network lan has no link between x and z/);
  });
});
