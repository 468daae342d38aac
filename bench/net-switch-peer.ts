// The sender and receiver of bench/net.ts's switch-rate measurement, in a worker thread (the switch is a process of
// its own, fleetlab-switch). Closed loop: at most WINDOW frames in flight, so loopback socket buffers never overflow and
// what is measured is the rate the switch sustains, not how fast the kernel drops. Then idle round trips, one frame at a
// time, straight from socket to socket and through the switch both ways: the switch's own added latency per hop.
import { createSocket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import type { NicPlan } from '../harness/net/fabric.ts';

const { x, y, frames } = workerData as { x: NicPlan; y: NicPlan; frames: number };
const WINDOW = 64;
const sx = createSocket('udp4');
const sy = createSocket('udp4');
await Promise.all([new Promise<void>((r) => sx.bind(x.qemuPort, '127.0.0.1', () => r())), new Promise<void>((r) => sy.bind(y.qemuPort, '127.0.0.1', () => r()))]);
const mac = (m: string) => Buffer.from(m.replace(/:/g, ''), 'hex');
const frame = (dst: string, src: string) => Buffer.concat([mac(dst), mac(src), Buffer.from([0x08, 0x00]), Buffer.alloc(46)]);
// y speaks first, so the switch knows where y is and forwards x's frames to y alone.
sy.send(frame('ff:ff:ff:ff:ff:ff', y.mac), y.switchPort, '127.0.0.1');
await new Promise((r) => setTimeout(r, 100));
let received = 0;
let wake: (() => void) | undefined;
sy.on('message', () => {
  received++;
  wake?.();
});
const toY = frame(y.mac, x.mac);
const t0 = performance.now();
let sent = 0;
while (received < frames) {
  while (sent < frames && sent - received < WINDOW) {
    sx.send(toY, x.switchPort, '127.0.0.1');
    sent++;
  }
  const lost = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(true), 1000);
    wake = () => {
      clearTimeout(t);
      resolve(false);
    };
  });
  if (lost) break;
}
const seconds = (performance.now() - t0) / 1000;
sy.removeAllListeners('message');

/** Median round trip x -> y -> x of one frame at a time, through the switch (both ways) or straight between the sockets. */
async function pingPong(viaSwitch: boolean, n: number): Promise<number> {
  const back = frame(x.mac, y.mac);
  sy.on('message', () => sy.send(back, viaSwitch ? y.switchPort : x.qemuPort, '127.0.0.1'));
  const rtts: number[] = [];
  for (let k = 0; k < n; k++) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      sx.once('message', () => resolve());
      sx.send(toY, viaSwitch ? x.switchPort : y.qemuPort, '127.0.0.1');
    });
    rtts.push(performance.now() - t);
    // At idle: one frame every millisecond or so, not back to back.
    await new Promise((r) => setTimeout(r, 1));
  }
  sy.removeAllListeners('message');
  return rtts.sort((p, q) => p - q)[Math.floor(n / 2)]!;
}
const direct = await pingPong(false, 500);
const switched = await pingPong(true, 500);
sx.close();
sy.close();
parentPort!.postMessage({ received, seconds, direct, switched });
