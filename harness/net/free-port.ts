// Ports on 127.0.0.1 that are free now, for QEMU to bind later (a NIC's UDP end, a user-mode host forward). A fleet
// plans every machine's ports when the case begins and starts its QEMUs a few at a time, minutes apart: in between,
// a port picked by bind(0) and let go is the kernel's to give to the next bind(0) (the switch's own ports, any
// socket on the host), and a 64-node fleet's QEMU found its port taken ("Address already in use"). So ports are
// picked below the kernel's ephemeral range (ip_local_port_range), where bind(0) never looks, and never twice by
// this process.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Ports this process handed out: not handed out again. */
const handedOut = new Set<number>();

/** The first port of the kernel's ephemeral range (32768 unless the host says otherwise). */
export function ephemeralStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 1024 ? start : 32768;
  } catch {
    return 32768;
  }
}

/** Binds `port` (0: the kernel picks) with `bind`, then lets it go; the port, or undefined when it is taken. */
async function probe(bind: (port: number) => Promise<{ port: number; close: () => Promise<void> }>, port: number): Promise<number | undefined> {
  try {
    const s = await bind(port);
    await s.close();
    return s.port;
  } catch {
    return undefined;
  }
}

async function freePort(bind: (port: number) => Promise<{ port: number; close: () => Promise<void> }>): Promise<number> {
  const hi = ephemeralStart();
  const lo = Math.max(1024, hi - 12_000);
  for (let i = 0; i < 100; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (handedOut.has(port)) continue;
    if ((await probe(bind, port)) !== undefined) {
      handedOut.add(port);
      return port;
    }
  }
  // A host whose low ports are all taken: the kernel's pick, still never twice from here.
  for (;;) {
    const port = await probe(bind, 0);
    if (port !== undefined && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

const udp = async (port: number) => {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', (err) => (s.close(), reject(err)));
    s.bind(port, '127.0.0.1', () => resolve());
  });
  return { port: s.address().port, close: () => new Promise<void>((r) => s.close(() => r())) };
};

const tcp = async (port: number) => {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) };
};

/** A UDP port on 127.0.0.1 free at this moment, below the ephemeral range, not handed out before by this process. */
export function freeUdpPort(): Promise<number> {
  return freePort(udp);
}

/** A TCP port on 127.0.0.1 free at this moment, below the ephemeral range, not handed out before by this process. */
export function freeTcpPort(): Promise<number> {
  return freePort(tcp);
}
