// TEST DOUBLE — an SNMP agent for the lab's SNMP power driver: Debian's real snmpd on a 127.0.0.1 UDP port, with
// the outlet tables of the vendors lab/drivers/snmp-outlet.ts knows behind it (lab/virtual/bin/pdu-mib, the stand-in
// of the PDU's or PoE switch's MIB, through snmpd's "pass"). Communities: "private" read-write, "public" read-only.
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSupervised, type SupervisedProcess } from '../../harness/process/supervisor.ts';
import { pollUntil, Deadline } from '../../harness/time/deadline.ts';

const BASES = { apc: '.1.3.6.1.4.1.318.1.1.4.4.2.1.3', eaton: '.1.3.6.1.4.1.534.6.6.7.6.6.1', raritan: '.1.3.6.1.4.1.13742.6.4.1.2.1', poe: '.1.3.6.1.2.1.105.1.1.1.3' } as const;

export interface SnmpAgent {
  port: number;
  /** An outlet's state as the stand-in MIB holds it: what the PDU did. */
  outlet(vendor: keyof typeof BASES, n: number): 'on' | 'off';
  process: SupervisedProcess;
  close(): Promise<void>;
}

/** A free UDP port on 127.0.0.1. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts snmpd with each vendor's outlets under `dir`/<vendor>; resolves once it answers. */
export async function startSnmpAgent(dir: string): Promise<SnmpAgent> {
  mkdirSync(dir, { recursive: true });
  const port = await freeUdpPort();
  const script = join(import.meta.dirname, 'bin/pdu-mib');
  const conf = join(dir, 'snmpd.conf');
  const lines = [`agentAddress udp:127.0.0.1:${port}`, 'rwcommunity private 127.0.0.1', 'rocommunity public 127.0.0.1'];
  for (const [vendor, base] of Object.entries(BASES)) {
    mkdirSync(join(dir, vendor), { recursive: true });
    lines.push(`pass ${base} /bin/sh ${script} ${vendor} ${join(dir, vendor)}`);
  }
  writeFileSync(conf, `${lines.join('\n')}\n`);
  mkdirSync(join(dir, 'persist'), { recursive: true });
  const proc = spawnSupervised('snmpd', 'snmpd', ['-f', '-Lo', '-C', '-c', conf, '-p', join(dir, 'snmpd.pid')], { env: { SNMP_PERSISTENT_DIR: join(dir, 'persist'), MIBS: '' } });
  const snmp = (await import('net-snmp')).default;
  const answers = () =>
    new Promise<boolean>((resolve) => {
      const s = snmp.createSession('127.0.0.1', 'public', { port, timeout: 300, retries: 0 });
      s.get(['1.3.6.1.2.1.1.1.0'], (err) => {
        s.close();
        resolve(!err);
      });
    });
  const up = await pollUntil(async () => ((await answers()) ? true : undefined), { deadline: Deadline.after(15_000, 'snmpd to answer'), intervalMs: 200 });
  if (up.timedOut) {
    await proc.stop();
    throw new Error(`snmpd did not answer on 127.0.0.1:${port} within 15 s: ${proc.stderrTail()}`);
  }
  return {
    port,
    process: proc,
    outlet: (vendor, n) => {
      try {
        return readFileSync(join(dir, vendor, `outlet-${n}`), 'utf8').trim() === 'on' ? 'on' : 'off';
      } catch {
        return 'off';
      }
    },
    close: async () => {
      await proc.stop();
    },
  };
}
