// Network benchmark, side by side in one process:
//   1. the fabric switch's forwarding rate, frames/s, measured directly (UDP frames through one switch port to another);
//      the switch is fleetlab-switch, the fabric's native helper;
//   2. throughput and latency between two testbed guests through the fleetlab switch, against the baseline of QEMU's
//      own point-to-point `-netdev socket` pair (no switch).
//   Guest runs alternate (pair, switch, pair, switch, ...) for --rounds rounds; the medians are compared.
//   node bench/net.ts [--frames 200000] [--mbytes 32] [--pings 100] [--rounds 3] [--guest-cpus 1]
import '../machines/testbed/register.ts';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Fabric } from '../harness/net/fabric.ts';
import { freeUdpPort } from '../harness/net/free-port.ts';
import { loadProfile } from '../harness/qemu/profile-loader.ts';
import { QemuMachine } from '../harness/qemu/qemu-machine.ts';

const { values } = parseArgs({ options: { frames: { type: 'string', default: '200000' }, mbytes: { type: 'string', default: '32' }, pings: { type: 'string', default: '100' }, rounds: { type: 'string', default: '3' }, 'guest-cpus': { type: 'string' } } });
// --guest-cpus 1: every guest of both set-ups runs on these CPUs (taskset), leaving the others to the runner and its
// switch, the way a host with cores to spare runs; without it guests and switch share every core.
if (values['guest-cpus']) process.env.FLEETLAB_QEMU_WRAPPER = `taskset -c ${values['guest-cpus']}`;
const FRAMES = Number(values.frames);
const MBYTES = Number(values.mbytes);
const PINGS = Number(values.pings);
const ROUNDS = Number(values.rounds);

/**
 * Frames/s the switch forwards from one port to another. The switch is its own process (fleetlab-switch); the sender
 * and the receiver run in a worker thread, as QEMU processes would. Node's sockets at the ends are slower than the
 * switch, so the figure is a floor of the switch's rate.
 */
async function switchRate(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-bench-net-'));
  const fabric = new Fabric({ lan: ['x', 'y'] }, { pcapDir: dir });
  const [nx] = await fabric.plan('bench', 'x');
  const [ny] = await fabric.plan('bench', 'y');
  const worker = new Worker(new URL('./net-switch-peer.ts', import.meta.url), { workerData: { x: nx, y: ny, frames: FRAMES } });
  const result = await new Promise<{ received: number; seconds: number; direct: number; switched: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the switch benchmark's peer exited with ${code}`)));
  });
  await worker.terminate();
  await fabric.close();
  console.log(`switch: ${result.received} of ${FRAMES} frames forwarded in ${result.seconds.toFixed(2)} s`);
  hopMs = (result.switched - result.direct) / 2;
  console.log(`idle round trip between two sockets, median of 500: direct ${(result.direct * 1000).toFixed(0)} us, through the switch ${(result.switched * 1000).toFixed(0)} us`);
  return result.received / result.seconds;
}
let hopMs = NaN;

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
    return await guestPair(a, b, b.net.address('lan'));
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
const pair: GuestResult[] = [];
const fab: GuestResult[] = [];
for (let r = 1; r <= ROUNDS; r++) {
  pair.push(await socketPair());
  fab.push(await throughSwitch());
  console.log(`round ${r}: pair ${pair.at(-1)!.mbitPerS.toFixed(1)} Mbit/s ${pair.at(-1)!.rttMs.toFixed(3)} ms; switch ${fab.at(-1)!.mbitPerS.toFixed(1)} Mbit/s ${fab.at(-1)!.rttMs.toFixed(3)} ms`);
}
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const base = { mbitPerS: median(pair.map((p) => p.mbitPerS)), rttMs: median(pair.map((p) => p.rttMs)) };
const sw = { mbitPerS: median(fab.map((p) => p.mbitPerS)), rttMs: median(fab.map((p) => p.rttMs)) };
console.log('');
console.log(`switch forwarding (fleetlab-switch process; Node peers in a worker, so a floor): ${Math.round(rate)} frames/s (goal >= 50000)`);
console.log(`switch's own added latency per hop at idle (sockets, no guests): ${(hopMs * 1000).toFixed(0)} us (goal <= 200 us)`);
if (ROUNDS) console.log(`throughput b -> a, ${MBYTES} MiB over HTTP, median of ${ROUNDS}: -netdev socket pair ${base.mbitPerS.toFixed(1)} Mbit/s, fleetlab switch ${sw.mbitPerS.toFixed(1)} Mbit/s, ratio ${(sw.mbitPerS / base.mbitPerS).toFixed(2)} (goal >= 0.9)`);
if (ROUNDS) console.log(`ping rtt avg over ${PINGS}, median of ${ROUNDS}: -netdev socket pair ${base.rttMs.toFixed(3)} ms, fleetlab switch ${sw.rttMs.toFixed(3)} ms, added ${(sw.rttMs - base.rttMs).toFixed(3)} ms per round trip, two hops (goal <= 0.2 ms per hop)`);
process.exit(0);
