// The switch itself, with real UDP sockets on 127.0.0.1 standing where QEMU's -netdev dgram ends would be:
// learning, cuts, loss, delay, rate, reordering and duplication counted frame by frame, link conditions checked when
// they are set, and the switch helper's death (reported; or with its runner's).
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { execa } from 'execa';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pidAlive, printedPid } from '../testing/processes.ts';
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
  /** When each frame arrived (performance.now()). */
  at: number[];
  fabric: Fabric;
}

async function end(plan: NicPlan, fabric: Fabric): Promise<End> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(plan.qemuPort, '127.0.0.1', () => r()));
  const e: End = { plan, socket, got: [], at: [], fabric };
  socket.on('message', (m) => {
    e.got.push(m.readUInt32BE(14));
    e.at.push(performance.now());
  });
  return e;
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function pair(opts: { onSwitchExit?: (e: Error) => void } = {}): Promise<{ fabric: Fabric; x: End; y: End; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-fabric-'));
  const fabric = new Fabric({ lan: ['x', 'y'] }, { pcapDir: dir, ...opts });
  const x = await end((await fabric.plan('t', 'x'))[0]!, fabric);
  const y = await end((await fabric.plan('t', 'y'))[0]!, fabric);
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

/**
 * Sends n numbered frames from x to y, `burst` at a time; before the next burst the switch has taken the last one
 * (its capture counts them), so a host too busy to run the switch for a while does not overflow a socket's buffer.
 */
async function send(x: End, y: End, n: number, burst = 8): Promise<void> {
  const captured = () => x.fabric.network('lan').pcap.frames;
  const base = captured();
  for (let k = 0; k < n; k++) {
    x.socket.send(frame(y.plan.mac, x.plan.mac, k), x.plan.switchPort, '127.0.0.1');
    if (k % burst === burst - 1 || k === n - 1) await until(() => captured() >= base + k + 1, 10_000);
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

  it('a one-way cut drops x -> y and counts the drops; y -> x still flows', async () => {
    const { fabric, x, y } = await pair();
    x.got.length = 0;
    fabric.network('lan').setLink('x', 'y', { up: false }, { oneWay: true });
    await send(x, y, 50);
    await send(y, x, 50);
    await until(() => x.got.length === 50);
    expect(y.got).toEqual([]);
    expect(fabric.network('lan').linkStats('x', 'y')).toMatchObject({ delivered: 0, dropped: 50 });
    fabric.network('lan').setLink('x', 'y', { up: true }, { oneWay: true });
    await send(x, y, 5);
    await until(() => y.got.length === 5);
  });

  it("hold drops every frame both ways whatever the links' conditions; what is set meanwhile applies on release", async () => {
    const { fabric, x, y } = await pair();
    const lan = fabric.network('lan');
    x.got.length = 0;
    lan.setLink('x', 'y', { delayMs: 1 });
    lan.hold();
    await send(x, y, 20);
    await send(y, x, 20);
    // Set while held: kept, and the link stays dropped until release.
    lan.setLink('x', 'y', { up: false }, { oneWay: true });
    lan.setLink('x', 'y', { up: true }, { oneWay: true });
    await send(x, y, 5);
    expect(x.got).toEqual([]);
    expect(y.got).toEqual([]);
    expect(lan.linkStats('x', 'y')).toMatchObject({ delivered: 0, dropped: 25 });
    expect(lan.linkConditions('x', 'y')).toMatchObject({ up: true, delayMs: 1 });
    lan.release();
    await send(x, y, 5);
    await send(y, x, 5);
    await until(() => y.got.length === 5 && x.got.length === 5);
    expect(y.got).toEqual([0, 1, 2, 3, 4]);
    expect(fabric.log.map((e) => e.event).filter((e) => /held|released/.test(e))).toEqual(['network lan: held (every frame dropped) while its machines start', 'network lan: released (links as their conditions say)']);
  });

  it('loss drops about its share of frames, counted', async () => {
    const { fabric, x, y } = await pair();
    fabric.network('lan').setLink('x', 'y', { loss: 0.3 }, { oneWay: true });
    await send(x, y, 1000);
    const stats = () => fabric.network('lan').linkStats('x', 'y');
    await until(() => stats().delivered + stats().dropped === 1000);
    // 1000 frames at p = 0.3: 300 expected, 14.5 standard deviation; 5 of them either side.
    expect(stats().dropped).toBeGreaterThan(228);
    expect(stats().dropped).toBeLessThan(372);
    await until(() => y.got.length === stats().delivered);
  });

  it("a radio model: a link's loss and delay from its length, measured; a move out of range cuts it, a heal keeps it cut", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-fabric-'));
    // x and y 1 unit apart of a range of 2: loss 1.0 · (1/2)² = 0.25, delay 1 + 2 · 1 = 3 ms.
    const fabric = new Fabric({ lan: { links: [], positions: { x: [0, 0], y: [1, 0] }, radio: { range: 2, lossAtRange: 1 } } }, { pcapDir: dir });
    const x = await end((await fabric.plan('t', 'x'))[0]!, fabric);
    const y = await end((await fabric.plan('t', 'y'))[0]!, fabric);
    cleanup.push(() => fabric.close(), () => void x.socket.close(), () => void y.socket.close());
    const lan = fabric.network('lan');
    expect(lan.linkConditions('x', 'y')).toMatchObject({ up: true, loss: 0.25, delayMs: 3 });
    const stats = () => lan.linkStats('x', 'y');
    await send(x, y, 1000);
    await until(() => stats().delivered + stats().dropped === 1000);
    // 1000 frames at p = 0.25: 250 expected, 13.7 standard deviation; 5 of them either side.
    expect(stats().dropped).toBeGreaterThan(181);
    expect(stats().dropped).toBeLessThan(319);
    // y walks out of range: the link is down, every frame dropped; a heal does not bring it back.
    fabric.network('lan').move('y', 3, 0);
    expect(lan.linkConditions('x', 'y').up).toBe(false);
    lan.heal();
    expect(lan.linkConditions('y', 'x').up).toBe(false);
    const before = stats();
    await send(x, y, 50);
    await until(() => stats().dropped === before.dropped + 50);
    expect(stats().delivered).toBe(before.delivered);
    // Back within range, closer: up again with less loss; the fabric's log says where it went.
    lan.move('y', 0.5, 0);
    expect(lan.linkConditions('x', 'y')).toMatchObject({ up: true, loss: 0.0625, delayMs: 2 });
    expect(fabric.log.map((e) => e.event)).toEqual(expect.arrayContaining(['network lan: y moved to (3, 0): in range of none', 'network lan: y moved to (0.5, 0): in range of x']));
    expect(() => lan.move('q', 0, 0)).toThrow('net.move(q): it is not on network lan (members: x, y)');
  });

  it('broadcastWindowMs: broadcasts wait for the end of their window and arrive together; unicast passes them; set while it runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-fabric-'));
    const W = 300;
    const fabric = new Fabric({ lan: { links: [['x', 'y']], broadcastWindowMs: W } }, { pcapDir: dir });
    const x = await end((await fabric.plan('t', 'x'))[0]!, fabric);
    const y = await end((await fabric.plan('t', 'y'))[0]!, fabric);
    cleanup.push(() => fabric.close(), () => void x.socket.close(), () => void y.socket.close());
    // The switch's windows are multiples of W on the monotonic clock, which is Node's hrtime on Linux.
    const ms = () => Number(process.hrtime.bigint() / 1_000_000n);
    const arrived = new Map<number, number>();
    y.socket.on('message', (m) => arrived.set(m.readUInt32BE(14), ms()));
    // x speaks first (held like any broadcast), so y's unicast to x below is to a learnt port.
    x.socket.send(frame('ff:ff:ff:ff:ff:ff', x.plan.mac, 0xffffffff), x.plan.switchPort, '127.0.0.1');
    await until(() => y.got.length === 1, 5000);
    // Three broadcasts 40 ms apart, just after a window's start: one window, so they arrive together at its end.
    await new Promise((r) => setTimeout(r, W - (ms() % W) + 5));
    const sent: number[] = [];
    for (let k = 0; k < 3; k++) {
      sent.push(ms());
      x.socket.send(frame('ff:ff:ff:ff:ff:ff', x.plan.mac, k), x.plan.switchPort, '127.0.0.1');
      if (k < 2) await new Promise((r) => setTimeout(r, 40));
    }
    // A unicast sent now, after them, is not held: it arrives first.
    const got = x.got.length;
    y.socket.send(frame(x.plan.mac, y.plan.mac, 7), y.plan.switchPort, '127.0.0.1');
    await until(() => arrived.size === 4 && x.got.length === got + 1, 5000);
    const unicastAt = x.at.at(-1)!;
    expect(y.at.slice(1).every((t) => t > unicastAt)).toBe(true);
    const at = [0, 1, 2].map((k) => arrived.get(k)!);
    for (let k = 0; k < 3; k++) expect(at[k]!).toBeGreaterThanOrEqual((Math.floor(sent[k]! / W) + 1) * W - 1);
    expect(Math.max(...at) - Math.min(...at)).toBeLessThan(20);
    expect(fabric.network('lan').broadcastWindowMs).toBe(W);
    // Changed while it runs: without a window a broadcast and a unicast after it arrive in order; with one, swapped.
    const order = async (b: number) => {
      x.socket.send(frame('ff:ff:ff:ff:ff:ff', x.plan.mac, b), x.plan.switchPort, '127.0.0.1');
      x.socket.send(frame(y.plan.mac, x.plan.mac, b + 1), x.plan.switchPort, '127.0.0.1');
      await until(() => y.got.includes(b) && y.got.includes(b + 1), 5000);
      return y.got.filter((k) => k === b || k === b + 1);
    };
    fabric.network('lan').setBroadcastWindow(undefined);
    expect(await order(10)).toEqual([10, 11]);
    fabric.network('lan').setBroadcastWindow(W);
    expect(await order(20)).toEqual([21, 20]);
    expect(fabric.log.map((e) => e.event)).toEqual(expect.arrayContaining(['network lan: broadcasts sent at once', `network lan: broadcasts in windows of ${W} ms`]));
    expect(() => fabric.network('lan').setBroadcastWindow(0)).toThrow(/network lan: broadcast window 0 is not a whole number of milliseconds from 1 to 1000/);
  });

  it('delay and jitter hold every frame for at least the delay, at most delay + jitter (and some slack)', async () => {
    const { fabric, x, y } = await pair();
    fabric.network('lan').setLink('x', 'y', { delayMs: 40, jitterMs: 20 }, { oneWay: true });
    const sent: number[] = [];
    for (let k = 0; k < 20; k++) {
      sent[k] = performance.now();
      x.socket.send(frame(y.plan.mac, x.plan.mac, k), x.plan.switchPort, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => y.got.length === 20);
    const held = y.got.map((seq, i) => y.at[i]! - sent[seq]!);
    expect(Math.min(...held)).toBeGreaterThanOrEqual(39);
    // The slack is for a host busy with guests: the test's own event loop may see an arrival late, never early.
    expect(Math.max(...held)).toBeLessThan(60 + 150);
    // Jitter spreads them: not all within a millisecond of each other.
    expect(Math.max(...held) - Math.min(...held)).toBeGreaterThan(1);
  });

  it('rate: 1000 frames of 60 bytes at 960 kbit/s take about half a second, in order', async () => {
    const { fabric, x, y } = await pair();
    fabric.network('lan').setLink('x', 'y', { rateKbit: 960 }, { oneWay: true });
    const t0 = performance.now();
    await send(x, y, 1000, 50);
    await until(() => y.got.length === 1000);
    const seconds = (y.at.at(-1)! - t0) / 1000;
    // 1000 x 480 bits at 960 kbit/s: 0.5 s.
    expect(seconds).toBeGreaterThan(0.49);
    expect(seconds).toBeLessThan(1.5);
    expect(y.got).toEqual([...Array(1000).keys()]);
  });

  it('a switch that dies is reported once, as an infrastructure error naming the network', async () => {
    const errors: Error[] = [];
    const { fabric } = await pair({ onSwitchExit: (e) => errors.push(e) });
    process.kill(fabric.switchPid!, 'SIGKILL');
    await until(() => errors.length === 1);
    expect(errors[0]!.name).toBe('InfrastructureError');
    expect(errors[0]!.message).toMatch(/^the switch of network lan \(fleetlab-switch\[\d+\]\) ended while the case ran; the machines on it are cut off\.\n.*signal SIGKILL/s);
    await fabric.close();
    expect(errors.length).toBe(1);
  });

  it('SIGTERM makes the switch write out its capture and exit 0 (reported, as the case did not close it)', async () => {
    const errors: Error[] = [];
    const { fabric, x, y, dir } = await pair({ onSwitchExit: (e) => errors.push(e) });
    await send(x, y, 30);
    await until(() => y.got.length === 30);
    process.kill(fabric.switchPid!, 'SIGTERM');
    await until(() => errors.length === 1);
    expect(errors[0]!.message).toMatch(/exit code 0/);
    expect((await readFile(join(dir, 'lan.pcap'))).length).toBe(24 + 31 * 76);
  });

  it('close() ends the switch: its captures written out, no helper left, no error reported', async () => {
    const errors: Error[] = [];
    const { fabric, x, y, dir } = await pair({ onSwitchExit: (e) => errors.push(e) });
    const pid = fabric.switchPid!;
    await send(x, y, 10);
    await until(() => y.got.length === 10);
    await fabric.close();
    expect(pidAlive(pid)).toBe(false);
    expect(errors).toEqual([]);
    expect((await readFile(join(dir, 'lan.pcap'))).length).toBe(24 + 11 * 76);
    expect(fabric.network('lan').pcap.frames).toBe(11);
  });

  it('a runner killed with SIGKILL takes its switch along; the capture stays readable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-fabric-'));
    const runner = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/switch-orphan.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await printedPid(runner, 'switch-pid');
    expect(pidAlive(pid)).toBe(true);
    runner.kill('SIGKILL');
    await until(() => !pidAlive(pid), 5000);
    const r = await execa('tcpdump', ['-nn', '-r', join(dir, 'lan.pcap')], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    // One line per frame starts with its time (an unknown ethertype adds hex lines).
    expect(r.stdout.split('\n').filter((l) => /^\d\d:\d\d:/.test(l))).toHaveLength(5);
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
