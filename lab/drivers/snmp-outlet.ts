// The SNMP outlet driver: one outlet of a network PDU, or one port of a PoE switch, switched with SNMP SET and read
// with GET (the net-snmp package; v1 or v2c). The OIDs and values per kind of device, from their MIBs (labgrid's
// drivers use the same):
//
// - apc      PowerNet-MIB sPDUOutletCtl .1.3.6.1.4.1.318.1.1.4.4.2.1.3.<outlet>: set 1 on, 2 off; reads 1 / 2.
// - eaton    EATON-EPDU-MIB outletControl .1.3.6.1.4.1.534.6.6.7.6.6.1: OnCmd .4.0.<outlet> and OffCmd .3.0.<outlet>
//            set 0 (now); Status .2.0.<outlet> reads 1 on, 0 off, 3 pending on, 2 pending off.
// - raritan  PDU2-MIB .1.3.6.1.4.1.13742.6.4.1.2.1: switchingOperation .2.1.<outlet> set 1 on, 0 off;
//            switchingState .3.1.<outlet> reads 7 on, 8 off.
// - poe      POWER-ETHERNET-MIB pethPsePortAdminEnable .1.3.6.1.2.1.105.1.1.1.3.<group>.<port>: true(1) / false(2).
// - custom   the lab file's own OIDs and values ({outlet} in an OID stands for the outlet): other vendors and models
//            (Gude's OIDs differ per model).
import snmp from 'net-snmp';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';

/** How one outlet is switched and read. */
export interface OutletMap {
  on: { oid: string; value: number };
  off: { oid: string; value: number };
  get: string;
  onValues: number[];
  offValues: number[];
}

export type SnmpVendor = 'apc' | 'eaton' | 'raritan' | 'poe';

export const SNMP_VENDORS: Record<SnmpVendor, (outlet: number, group: number) => OutletMap> = {
  apc: (o) => ({ on: { oid: `1.3.6.1.4.1.318.1.1.4.4.2.1.3.${o}`, value: 1 }, off: { oid: `1.3.6.1.4.1.318.1.1.4.4.2.1.3.${o}`, value: 2 }, get: `1.3.6.1.4.1.318.1.1.4.4.2.1.3.${o}`, onValues: [1], offValues: [2] }),
  eaton: (o) => ({ on: { oid: `1.3.6.1.4.1.534.6.6.7.6.6.1.4.0.${o}`, value: 0 }, off: { oid: `1.3.6.1.4.1.534.6.6.7.6.6.1.3.0.${o}`, value: 0 }, get: `1.3.6.1.4.1.534.6.6.7.6.6.1.2.0.${o}`, onValues: [1, 3], offValues: [0, 2] }),
  raritan: (o) => ({ on: { oid: `1.3.6.1.4.1.13742.6.4.1.2.1.2.1.${o}`, value: 1 }, off: { oid: `1.3.6.1.4.1.13742.6.4.1.2.1.2.1.${o}`, value: 0 }, get: `1.3.6.1.4.1.13742.6.4.1.2.1.3.1.${o}`, onValues: [7], offValues: [8] }),
  poe: (o, g) => ({ on: { oid: `1.3.6.1.2.1.105.1.1.1.3.${g}.${o}`, value: 1 }, off: { oid: `1.3.6.1.2.1.105.1.1.1.3.${g}.${o}`, value: 2 }, get: `1.3.6.1.2.1.105.1.1.1.3.${g}.${o}`, onValues: [1], offValues: [2] }),
};

export interface SnmpOutletSpec {
  host: string;
  port: number;
  outlet: number;
  vendor: SnmpVendor | 'custom';
  /** For vendor 'custom'; '{outlet}' in an OID is the outlet's number. */
  oids?: { on: { oid: string; value: number }; off: { oid: string; value: number }; get: string; onValues?: number[]; offValues?: number[] };
  /** The PoE port's group (POWER-ETHERNET-MIB's pethPsePortGroupIndex), default 1. */
  group: number;
  community: string;
  readCommunity?: string;
  version: '1' | '2c';
  timeoutMs: number;
}

/** The outlet's OIDs and values; a 'custom' spec without its OIDs is a configuration error naming the board. */
export function outletMap(spec: SnmpOutletSpec, board: string): OutletMap {
  if (spec.vendor !== 'custom') return SNMP_VENDORS[spec.vendor](spec.outlet, spec.group);
  if (!spec.oids) throw new ConfigurationError(`lab: board ${board}: power driver snmp with vendor "custom" needs oids: { on: { oid, value }, off: { oid, value }, get, onValues, offValues }`, { details: { board, field: 'power.oids' } });
  const sub = (oid: string) => oid.replace(/^\./, '').replaceAll('{outlet}', String(spec.outlet));
  const o = spec.oids;
  return { on: { oid: sub(o.on.oid), value: o.on.value }, off: { oid: sub(o.off.oid), value: o.off.value }, get: sub(o.get), onValues: o.onValues ?? [o.on.value], offValues: o.offValues ?? [o.off.value] };
}

/** The outlet as fleetlab's PowerDriver needs it: set() checks the state it reads back. */
export function snmpOutlet(spec: SnmpOutletSpec, board: string): { describe: string; set(on: boolean): Promise<void>; get(): Promise<boolean | undefined> } {
  const map = outletMap(spec, board);
  const where = `snmp ${spec.vendor} ${spec.host}:${spec.port} outlet ${spec.outlet}`;
  const session = (community: string) => snmp.createSession(spec.host, community, { port: spec.port, version: spec.version === '1' ? snmp.Version1 : snmp.Version2c, timeout: spec.timeoutMs, retries: 1 });
  const request = <T>(community: string, what: string, fn: (s: snmp.Session, done: (err: Error | null, v?: T) => void) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const s = session(community);
      s.on('error', (err: Error) => reject(new InfrastructureError(`power: ${board}: ${where}: ${what}: ${err.message}`, { cause: err })));
      fn(s, (err, v) => {
        s.close();
        if (err) reject(new InfrastructureError(`power: ${board}: ${where}: ${what} failed: ${err.message}${/timed out/i.test(err.message) ? ` (no answer within ${spec.timeoutMs} ms, retried once: is the agent up, the host and port right?)` : ''}`, { cause: err }));
        else resolve(v as T);
      });
    });
  const read = () =>
    request<number>(spec.readCommunity ?? spec.community, `GET ${map.get}`, (s, done) =>
      s.get([map.get], (err, vbs) => {
        if (err) return done(err);
        const vb = vbs?.[0];
        if (!vb || snmp.isVarbindError(vb)) return done(new Error(vb ? snmp.varbindError(vb) : 'no varbind in the answer'));
        done(null, Number(vb.value));
      }),
    );
  const state = async (): Promise<boolean> => {
    const v = await read();
    if (map.onValues.includes(v)) return true;
    if (map.offValues.includes(v)) return false;
    throw new InfrastructureError(`power: ${board}: ${where}: GET ${map.get} read ${v}, neither on (${map.onValues.join(', ')}) nor off (${map.offValues.join(', ')}): the wrong vendor or outlet?`);
  };
  return {
    describe: where,
    async set(on) {
      const cmd = on ? map.on : map.off;
      await request<void>(spec.community, `SET ${cmd.oid} = ${cmd.value}`, (s, done) =>
        s.set([{ oid: cmd.oid, type: snmp.ObjectType.Integer, value: cmd.value }], (err, vbs) => {
          if (err) return done(err);
          const vb = vbs?.[0];
          if (vb && snmp.isVarbindError(vb)) return done(new Error(snmp.varbindError(vb)));
          done(null);
        }),
      );
      // A PDU switches in its own time (Eaton's "pending" states): read until it says so, briefly.
      for (let i = 0; ; i++) {
        if ((await state()) === on) return;
        if (i >= 20) throw new InfrastructureError(`power: ${board}: ${where}: told ${on ? 'on' : 'off'} (SET ${cmd.oid} = ${cmd.value}) but it still reads ${on ? 'off' : 'on'} after 5 s`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    get: state,
  };
}
