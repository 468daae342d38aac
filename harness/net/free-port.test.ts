// Ports for QEMU to bind later: below the kernel's ephemeral range (where bind(0) never looks, so the switch's ports
// and other sockets cannot take them in the meantime), never the same twice, free when handed out.
import { createSocket, type Socket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { ephemeralStart, freeTcpPort, freeUdpPort } from './free-port.ts';

describe('free ports', () => {
  it('hands out distinct UDP and TCP ports below the ephemeral range, each bindable', async () => {
    const start = ephemeralStart();
    const udp = await Promise.all(Array.from({ length: 150 }, () => freeUdpPort()));
    const tcp = await Promise.all(Array.from({ length: 50 }, () => freeTcpPort()));
    const all = [...udp, ...tcp];
    expect(new Set(all).size).toBe(all.length);
    for (const p of all) expect(p < start && p >= 1024, `${p}`).toBe(true);
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) => (s.once('error', reject), s.bind(udp[0], '127.0.0.1', () => resolve())));
    s.close();
  });

  it('never hands out a port another socket holds', async () => {
    // Hold a sixth of the range it picks from (the 12000 ports below the ephemeral range): none of them comes back.
    const start = ephemeralStart();
    const held: Socket[] = [];
    for (let p = start - 12_000; p < start; p += 6) {
      const s = createSocket('udp4');
      const ok = await new Promise<boolean>((resolve) => (s.once('error', () => (s.close(), resolve(false))), s.bind(p, '127.0.0.1', () => resolve(true))));
      if (ok) held.push(s);
    }
    expect(held.length).toBeGreaterThan(1500);
    const heldPorts = new Set(held.map((s) => s.address().port));
    const got = await Promise.all(Array.from({ length: 300 }, () => freeUdpPort()));
    expect(got.filter((p) => heldPorts.has(p))).toEqual([]);
    for (const s of held) s.close();
  });
});
