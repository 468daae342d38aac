// The SNMP power driver against a real snmpd (Debian's package) whose outlet tables are the stand-in MIB of
// lab/virtual/bin/pdu-mib: each vendor's outlet switched on and off and read back, the lab file's own OIDs, and the
// failures a lab meets (a wrong community, an agent that is gone, a vendor that does not match) named with the host
// and outlet.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfrastructureError } from '../harness/errors/fleetlab-error.ts';
import { powerDriver } from './drivers/power.ts';
import { labSchema } from './inventory.ts';
import type { PowerSpec } from './inventory.ts';
import { startSnmpAgent, type SnmpAgent } from './virtual/snmp-agent.ts';

let agent: SnmpAgent;
beforeAll(async () => {
  agent = await startSnmpAgent(await mkdtemp(join(tmpdir(), 'fleetlab-snmp-')));
}, 30_000);
afterAll(async () => {
  await agent?.close();
});

const spec = (o: Record<string, unknown>): PowerSpec => ({ driver: 'snmp', host: '127.0.0.1', port: agent.port, group: 1, community: 'private', version: '2c', timeoutMs: 1000, offDelayMs: 0, onDelayMs: 0, ...o }) as PowerSpec;

describe('the snmp power driver', () => {
  for (const [vendor, outlet] of [['apc', 3], ['eaton', 5], ['raritan', 2], ['poe', 7]] as const) {
    it(`${vendor}: switches outlet ${outlet} on and off through snmpd and reads it back`, async () => {
      const d = powerDriver(spec({ vendor, outlet }), 'pi4-01');
      expect(d.describe).toBe(`snmp ${vendor} 127.0.0.1:${agent.port} outlet ${outlet}`);
      expect(await d.get()).toBe(false);
      await d.set(true);
      expect(agent.outlet(vendor, outlet)).toBe('on');
      expect(await d.get()).toBe(true);
      await d.set(false);
      expect(agent.outlet(vendor, outlet)).toBe('off');
      expect(await d.get()).toBe(false);
      // Another outlet is untouched.
      expect(agent.outlet(vendor, outlet + 1)).toBe('off');
    });
  }

  it("the lab file's own OIDs ({outlet} in them), and a read-only community for reading", async () => {
    const d = powerDriver(spec({ vendor: 'custom', outlet: 4, readCommunity: 'public', oids: { on: { oid: '.1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}', value: 1 }, off: { oid: '1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}', value: 2 }, get: '1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}' } }), 'pi4-02');
    await d.set(true);
    expect(agent.outlet('apc', 4)).toBe('on');
    expect(await d.get()).toBe(true);
  });

  it('a read-only community cannot switch; a vendor that reads values it does not know says so; a gone agent times out naming host and outlet', async () => {
    await expect(powerDriver(spec({ vendor: 'apc', outlet: 1, community: 'public' }), 'pi4-01').set(true)).rejects.toThrow(/power: pi4-01: snmp apc 127\.0\.0\.1:\d+ outlet 1: SET 1\.3\.6\.1\.4\.1\.318\.1\.1\.4\.4\.2\.1\.3\.1 = 1 failed: .*(NotWritable|NoAccess|not writable|noAccess)/i);
    expect(agent.outlet('apc', 1)).toBe('off');
    // A raritan outlet read with eaton's values: 8 is neither on (1, 3) nor off (0, 2).
    const wrong = powerDriver(spec({ vendor: 'custom', outlet: 1, oids: { on: { oid: '1.3.6.1.4.1.13742.6.4.1.2.1.2.1.{outlet}', value: 1 }, off: { oid: '1.3.6.1.4.1.13742.6.4.1.2.1.2.1.{outlet}', value: 0 }, get: '1.3.6.1.4.1.13742.6.4.1.2.1.3.1.{outlet}', onValues: [1, 3], offValues: [0, 2] } }), 'pi4-03');
    await expect(wrong.get()).rejects.toThrow(/read 8, neither on \(1, 3\) nor off \(0, 2\): the wrong vendor or outlet\?/);
    const gone = powerDriver(spec({ vendor: 'apc', outlet: 1, port: 9 }), 'pi4-01');
    const err = await gone.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfrastructureError);
    expect((err as Error).message).toMatch(/power: pi4-01: snmp apc 127\.0\.0\.1:9 outlet 1: GET .* failed: .*(timed out|ECONNREFUSED)/i);
  }, 20_000);

  it('a lab file with an snmp outlet of vendor custom and no OIDs, or outlet 0, is refused naming the field', () => {
    const board = (power: Record<string, unknown>) => ({ name: 'l', boards: { 'pi4-09': { profile: 'x86_64-direct', serial: { tcp: 'shelf1:4001' }, power } } });
    const custom = labSchema.safeParse(board({ driver: 'snmp', host: 'pdu1', outlet: 2, vendor: 'custom' }));
    expect(custom.success).toBe(false);
    expect(custom.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toContain('boards.pi4-09.power.oids: vendor "custom" needs oids: { on: { oid, value }, off: { oid, value }, get, onValues, offValues }');
    const zero = labSchema.safeParse(board({ driver: 'snmp', host: 'pdu1', outlet: 0, vendor: 'apc' }));
    expect(zero.error!.issues.map((i) => i.path.join('.'))).toContain('boards.pi4-09.power.outlet');
    expect(labSchema.safeParse(board({ driver: 'snmp', host: 'pdu1', outlet: 2, vendor: 'poe' })).success).toBe(true);
  });
});
