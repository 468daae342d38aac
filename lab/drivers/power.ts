// Power drivers for lab boards. Each speaks its device's own protocol, documented here; requests to one device are
// serialised (one relay board, one plug: never two commands crossing); every request has a deadline.
//
// - tasmota      Tasmota's HTTP command API: GET <url>/cm?cmnd=Power<relay>%20On|Off, and "Power<relay>" alone for
//                the state; answers {"POWER<relay>":"ON"|"OFF"} ("POWER" with no relay number). user/password go into
//                the query as Tasmota's WebPassword expects (&user=…&password=…).
// - shelly-gen1  Shelly Gen1 HTTP: GET <url>/relay/<n>?turn=on|off; GET <url>/relay/<n> answers {"ison":true|false}.
// - shelly-gen2  Shelly Gen2/Gen3 RPC over HTTP: GET <url>/rpc/Switch.Set?id=<n>&on=true|false;
//                GET <url>/rpc/Switch.GetStatus?id=<n> answers {"output":true|false}.
// - gpio         libgpiod's gpioset: gpioset --mode=exit <chip> <line>=<0|1> (active-low boards invert).
// - usbrelay     USB HID relay boards through the usbrelay command: usbrelay <SERIAL_N>=1|0.
// - command      any command lines (sh -c): on, off and optionally status (exit 0 = on, 1 = off).
// - manual       asks the person at the console to switch it, and waits for Enter.
// - snmp         a PDU outlet or a PoE switch port over SNMP v1/v2c (APC, Eaton, Raritan, POWER-ETHERNET-MIB, or the
//                lab file's own OIDs): lab/drivers/snmp-outlet.ts.
import { execa } from 'execa';
import { createInterface } from 'node:readline';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import type { PowerSpec } from '../inventory.ts';
import { snmpOutlet } from './snmp-outlet.ts';
import type { LabHost } from '../lab-host.ts';
import { runTool } from './run-tool.ts';

export interface PowerDriver {
  /** The driver's name and its device, for reports: "tasmota http://10.0.0.7". */
  readonly describe: string;
  set(on: boolean): Promise<void>;
  /** The switch's state, or undefined when the device cannot tell. */
  get(): Promise<boolean | undefined>;
}

const REQUEST_MS = 10_000;
/** One queue per device (URL, GPIO chip, relay board), so requests never cross. */
const queues = new Map<string, Promise<unknown>>();

function serialised<T>(device: string, work: () => Promise<T>): Promise<T> {
  const prev = queues.get(device) ?? Promise.resolve();
  const next = prev.then(work, work);
  queues.set(device, next.catch(() => undefined));
  return next;
}

async function httpJson(url: string, what: string): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_MS) });
  } catch (err) {
    throw new InfrastructureError(`power: ${what}: ${url} did not answer within ${REQUEST_MS / 1000} s: ${(err as Error).message}`, { cause: err });
  }
  const text = await res.text();
  if (!res.ok) throw new InfrastructureError(`power: ${what}: ${url} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new InfrastructureError(`power: ${what}: ${url} answered no JSON: ${text.slice(0, 200)}`);
  }
}

function withPath(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}

/**
 * The driver for a board's power spec. `board` names it in messages. With `host` (the board's lab host), the
 * command-line drivers (command, gpio, usbrelay) run their commands there over SSH; the network ones speak to their
 * device from here.
 */
export function powerDriver(spec: PowerSpec, board: string, host?: LabHost): PowerDriver {
  const run = (argv: string[], tool: string) => runTool(argv, { who: `power: ${board}`, tool, timeoutMs: REQUEST_MS, host });
  const onHost = host ? ` on ${host.name}` : '';
  switch (spec.driver) {
    case 'tasmota': {
      const key = `POWER${spec.relay ?? ''}`;
      const auth = spec.user ? `&user=${encodeURIComponent(spec.user)}&password=${encodeURIComponent(spec.password ?? '')}` : '';
      const cmd = (c: string) => withPath(spec.url, `/cm?cmnd=${encodeURIComponent(c)}${auth}`);
      const state = (j: Record<string, unknown>, what: string) => {
        const v = j[key];
        if (v !== 'ON' && v !== 'OFF') throw new InfrastructureError(`power: ${board}: tasmota ${what} answered ${JSON.stringify(j)}, without "${key}": wrong relay number?`);
        return v === 'ON';
      };
      return {
        describe: `tasmota ${spec.url}${spec.relay ? ` relay ${spec.relay}` : ''}`,
        set: (on) =>
          serialised(spec.url, async () => {
            const j = await httpJson(cmd(`Power${spec.relay ?? ''} ${on ? 'On' : 'Off'}`), `${board} ${on ? 'on' : 'off'}`);
            if (state(j, 'switch') !== on) throw new InfrastructureError(`power: ${board}: tasmota was told ${on ? 'On' : 'Off'} and answered ${JSON.stringify(j)}`);
          }),
        get: () => serialised(spec.url, async () => state(await httpJson(cmd(`Power${spec.relay ?? ''}`), `${board} status`), 'status')),
      };
    }
    case 'shelly-gen1':
      return {
        describe: `shelly-gen1 ${spec.url} relay ${spec.relay}`,
        set: (on) =>
          serialised(spec.url, async () => {
            const j = await httpJson(withPath(spec.url, `/relay/${spec.relay}?turn=${on ? 'on' : 'off'}`), `${board} ${on ? 'on' : 'off'}`);
            if (j.ison !== on) throw new InfrastructureError(`power: ${board}: shelly answered ${JSON.stringify(j)} to turn=${on ? 'on' : 'off'}`);
          }),
        get: () => serialised(spec.url, async () => (await httpJson(withPath(spec.url, `/relay/${spec.relay}`), `${board} status`)).ison === true),
      };
    case 'shelly-gen2':
      return {
        describe: `shelly-gen2 ${spec.url} switch ${spec.id}`,
        set: (on) =>
          serialised(spec.url, async () => {
            // Switch.Set answers the previous state ({"was_on":…}); the new one is checked with GetStatus.
            await httpJson(withPath(spec.url, `/rpc/Switch.Set?id=${spec.id}&on=${on}`), `${board} ${on ? 'on' : 'off'}`);
            const j = await httpJson(withPath(spec.url, `/rpc/Switch.GetStatus?id=${spec.id}`), `${board} status`);
            if (j.output !== on) throw new InfrastructureError(`power: ${board}: shelly switch ${spec.id} reads ${JSON.stringify(j)} after on=${on}`);
          }),
        get: () => serialised(spec.url, async () => (await httpJson(withPath(spec.url, `/rpc/Switch.GetStatus?id=${spec.id}`), `${board} status`)).output === true),
      };
    case 'gpio':
      return {
        describe: `gpio ${spec.chip} line ${spec.line}${spec.activeLow ? ' (active low)' : ''}${onHost}`,
        set: (v) => serialised(`gpio:${host?.name ?? ''}:${spec.chip}`, () => run(['gpioset', '--mode=exit', spec.chip, `${spec.line}=${v !== spec.activeLow ? 1 : 0}`], 'gpioset (Debian package gpiod)')),
        get: async () => undefined,
      };
    case 'usbrelay':
      return {
        describe: `usbrelay ${spec.relay}${onHost}`,
        set: (v) => serialised(`usbrelay:${host?.name ?? ''}`, () => run(['usbrelay', `${spec.relay}=${v ? 1 : 0}`], 'usbrelay (Debian package usbrelay)')),
        get: async () => undefined,
      };
    case 'command':
      return {
        describe: `command "${spec.on}" / "${spec.off}"${onHost}`,
        set: (v) => serialised(`command:${host?.name ?? ''}:${spec.on}`, () => run(['sh', '-c', v ? spec.on : spec.off], 'the power command')),
        get: async () => {
          if (!spec.status) return undefined;
          const r = host ? await host.exec(spec.status, { timeoutMs: REQUEST_MS, what: `power status of ${board}: ${spec.status}` }) : await execa('sh', ['-c', spec.status], { reject: false, timeout: REQUEST_MS });
          if (r.exitCode === 0) return true;
          if (r.exitCode === 1) return false;
          throw new InfrastructureError(`power: ${board}: status command "${spec.status}"${onHost} exited ${r.exitCode} (0 means on, 1 off): ${r.stderr.trim()}`);
        },
      };
    case 'snmp': {
      const outlet = snmpOutlet(spec, board);
      return { describe: outlet.describe, set: (on) => serialised(`snmp:${spec.host}:${spec.port}`, () => outlet.set(on)), get: () => serialised(`snmp:${spec.host}:${spec.port}`, () => outlet.get()) };
    }
    case 'manual':
      return {
        describe: 'manual (the person at the console switches it)',
        set: (on) => serialised('manual', () => askPerson(`Switch board ${board} ${on ? 'ON' : 'OFF'}, then press Enter.`)),
        get: async () => undefined,
      };
  }
}

async function askPerson(message: string): Promise<void> {
  if (!process.stdin.isTTY) throw new ConfigurationError(`power: manual switching needs a person at a terminal: ${message}`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    await new Promise<void>((done) => rl.question(`fleetlab: ${message} `, () => done()));
  } finally {
    rl.close();
  }
}
