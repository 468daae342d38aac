// Network benchmark, side by side in one process:
//   1. the fabric switch's forwarding rate, frames/s, measured directly (UDP frames through one switch port to another);
//   2. throughput and latency between two testbed guests through the fleetlab switch, against the baseline of QEMU's
//      own point-to-point `-netdev socket` pair (no switch).
//   node bench/net.ts [--frames 200000] [--mbytes 32] [--pings 40]
import '../machines/testbed/register.ts';
import { createSocket } from 'node:dgram';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Fabric } from '../harness/net/fabric.ts';
import { freeUdpPort } from '../harness/net/free-port.ts';
import { loadProfile } from '../harness/qemu/profile-loader.ts';
import { QemuMachine } from '../harness/qemu/qemu-machine.ts';

const { values } = parseArgs({ options: { frames: { type: 'string', default: '200000' }, mbytes: { type: 'string', default: '32' }, pings: { type: 'string', default: '40' } } });
const FRAMES = Number(values.frames);
const MBYTES = Number(values.mbytes);
const PINGS = Number(values.pings);

/** Frames/s the switch forwards from one port to another (sender and receiver in this process too: a lower bound). */
async function switchRate(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-bench-net-'));
  const fabric = new Fabric({ lan: ['x', 'y'] }, { pcapDir: dir });
  const [nx] = await fabric.plan('bench', 'x');
  const [ny] = await fabric.plan('bench', 'y');
  const sx = createSocket('udp4');
  const sy = createSocket('udp4');
  await Promise.all([new Promise<void>((r) => sx.bind(nx!.qemuPort, '127.0.0.1', () => r())), new Promise<void>((r) => sy.bind(ny!.qemuPort, '127.0.0.1', () => r()))]);
  const mac = (m: string) => Buffer.from(m.replace(/:/g, ''), 'hex');
  const frame = (dst: string, src: string) => Buffer.concat([mac(dst), mac(src), Buffer.from([0x08, 0x00]), Buffer.alloc(46)]);
  // y speaks first, so the switch knows where y is and forwards x's frames to y alone.
  sy.send(frame('ff:ff:ff:ff:ff:ff', ny!.mac), nx!.switchPort === ny!.switchPort ? 0 : ny!.switchPort, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 100));
  let received = 0;
  let wake: (() => void) | undefined;
  sy.on('message', () => {
    received++;
    wake?.();
  });
  const toY = frame(ny!.mac, nx!.mac);
  // Closed loop: at most WINDOW frames in flight, so loopback socket buffers never overflow and what is measured is
  // the rate the switch sustains, not how fast the kernel drops.
  const WINDOW = 64;
  const t0 = performance.now();
  let sent = 0;
  while (received < FRAMES) {
    while (sent < FRAMES && sent - received < WINDOW) {
      sx.send(toY, nx!.switchPort, '127.0.0.1');
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
  sx.close();
  sy.close();
  await fabric.close();
  console.log(`switch: ${received} of ${FRAMES} frames forwarded in ${seconds.toFixed(2)} s`);
  return received / seconds;
}

interface GuestResult {
  mbitPerS: number;
  rttMs: number;
}

/** Throughput (an HTTP download of MBYTES from b to a) and round-trip time (ping) from a to b. */
async function guestPair(a: QemuMachine, b: QemuMachine, bAddress: string): Promise<GuestResult> {
  await a.waitUntilSucceeds(`ping -c 1 -W 1 ${bAddress}`, { timeout: 60_000 });
  const ping = await a.succeed(`ping -c ${PINGS} -i 0.05 ${bAddress}`, { timeout: 120_000 });
  const rttMs = Number(/= [\d.]+\/([\d.]+)\//.exec(ping)?.[1]);
  // An HTTP download ends only when every byte has arrived, and the byte count is checked: a figure for bytes that
  // never crossed would be worthless (busybox nc returns before its data has left).
  const bytes = MBYTES * 1024 * 1024;
  await b.succeed(`mkdir -p /tmp/www && head -c ${bytes} /dev/zero > /tmp/www/blob && httpd -p 8080 -h /tmp/www`);
  const t0 = performance.now();
  const got = Number((await a.succeed(`wget -q -O - http://${bAddress}:8080/blob | wc -c`, { timeout: 300_000 })).trim());
  const seconds = (performance.now() - t0) / 1000;
  if (got !== bytes) throw new Error(`the download brought ${got} bytes, not ${bytes}`);
  return { mbitPerS: (bytes * 8) / 1e6 / seconds, rttMs };
}

async function throughSwitch(): Promise<GuestResult> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-bench-net-'));
  const fabric = new Fabric({ lan: ['a', 'b'] }, { pcapDir: dir });
  const profile = await loadProfile('x86_64-direct');
  const a = new QemuMachine(profile, { name: 'a', nics: await fabric.plan('bench', 'a'), logDir: dir });
  const b = new QemuMachine(profile, { name: 'b', nics: await fabric.plan('bench', 'b'), logDir: dir });
  try {
    await Promise.all([a, b].map(async (m) => (await m.start(), await m.waitForShell())));
    return await guestPair(a, b, b.address('lan'));
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await fabric.close();
  }
}

async function socketPair(): Promise<GuestResult> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-bench-net-'));
  const profile = await loadProfile('x86_64-direct');
  const [pa, pb] = [await freeUdpPort(), await freeUdpPort()];
  const nic = (local: number, remote: number, mac: string) => ['-netdev', `socket,id=bench0,udp=127.0.0.1:${remote},localaddr=127.0.0.1:${local}`, '-device', `virtio-net-pci,netdev=bench0,mac=${mac}`];
  const a = new QemuMachine({ ...profile, qemu: { ...profile.qemu, extraArgs: nic(pa, pb, '52:54:00:00:09:0a') } }, { name: 'a', logDir: dir });
  const b = new QemuMachine({ ...profile, qemu: { ...profile.qemu, extraArgs: nic(pb, pa, '52:54:00:00:09:0b') } }, { name: 'b', logDir: dir });
  try {
    await Promise.all([a, b].map(async (m) => (await m.start(), await m.waitForShell())));
    await a.succeed('ip link set eth0 up && ip addr add 198.18.9.10/24 dev eth0');
    await b.succeed('ip link set eth0 up && ip addr add 198.18.9.11/24 dev eth0');
    return await guestPair(a, b, '198.18.9.11');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

const rate = await switchRate();
const base = await socketPair();
const fab = await throughSwitch();
console.log('');
console.log(`switch forwarding (one core, sender and receiver in-process): ${Math.round(rate)} frames/s (goal >= 50000)`);
console.log(`throughput b -> a, ${MBYTES} MiB over HTTP: -netdev socket pair ${base.mbitPerS.toFixed(1)} Mbit/s, fleetlab switch ${fab.mbitPerS.toFixed(1)} Mbit/s, ratio ${(fab.mbitPerS / base.mbitPerS).toFixed(2)} (goal >= 0.9)`);
console.log(`ping rtt avg over ${PINGS}: -netdev socket pair ${base.rttMs.toFixed(3)} ms, fleetlab switch ${fab.rttMs.toFixed(3)} ms, added ${(fab.rttMs - base.rttMs).toFixed(3)} ms per round trip (goal <= 0.2 ms per hop)`);
process.exit(0);
