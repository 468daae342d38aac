// A lab's description: typed, zod-validated TypeScript like machine profiles. A lab file exports
// `defineLab({ name, boards: { ... } })`; each board names its profile (the hardware as scenarios see it: arch,
// firmware, shell), tags, its serial line, its power switch, optionally an SD mux, and the login of its serial shell.
// Errors name the file and the field.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigurationError } from '../harness/errors/fleetlab-error.ts';

const serialSchema = z.union([
  z.object({
    /** A device path: /dev/ttyUSB0, or better a stable /dev/serial/by-id/… or /dev/serial/by-path/… link. */
    device: z.string().min(1),
    baud: z.number().int().positive().default(115200),
  }),
  z.object({
    /** A USB serial adapter by its serial number, found under /dev/serial/by-id. */
    usbSerial: z.string().min(1),
    baud: z.number().int().positive().default(115200),
  }),
  z.object({
    /** A raw TCP port of a serial server (ser2net "raw" or "telnet" with no options). */
    tcp: z.string().regex(/^[^:\s]+:\d+$/, 'host:port'),
  }),
  z.object({
    /** An RFC 2217 port of a serial server (ser2net's telnet(rfc2217) accepter): the line's baud and 8N1 are set through it. */
    rfc2217: z.string().regex(/^[^:\s]+:\d+$/, 'host:port'),
    baud: z.number().int().positive().default(115200),
  }),
]);

/** A lab host: a machine the boards hang off, reached with OpenSSH (lab/lab-host.ts). */
export const hostSchema = z.object({
  /** user@address. */
  ssh: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'user@address'),
  port: z.number().int().min(1).max(65535).default(22),
  /** The private key file its user accepts (relative to the lab file). */
  privateKey: z.string().min(1),
  /** Its host key, "ssh-ed25519 AAAA…": pinned; without it the first key seen is trusted and logged. */
  hostKey: z.string().regex(/^[\w@.-]+ [A-Za-z0-9+/=]+/, '"type base64", as in known_hosts').optional(),
});

const powerSchema = z.discriminatedUnion('driver', [
  z.object({ driver: z.literal('tasmota'), url: z.url(), relay: z.number().int().min(1).max(8).optional(), user: z.string().optional(), password: z.string().optional() }),
  z.object({ driver: z.literal('shelly-gen1'), url: z.url(), relay: z.number().int().min(0).default(0) }),
  z.object({ driver: z.literal('shelly-gen2'), url: z.url(), id: z.number().int().min(0).default(0) }),
  z.object({ driver: z.literal('gpio'), chip: z.string().min(1), line: z.number().int().min(0), activeLow: z.boolean().default(false) }),
  z.object({ driver: z.literal('usbrelay'), relay: z.string().regex(/^\w+_\d+$/, 'SERIAL_N, as usbrelay lists it') }),
  z.object({ driver: z.literal('command'), on: z.string().min(1), off: z.string().min(1), status: z.string().optional() }),
  z.object({ driver: z.literal('manual') }),
  z.object({
    /** A PDU outlet or a PoE switch port over SNMP (lab/drivers/snmp-outlet.ts lists each vendor's OIDs). */
    driver: z.literal('snmp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(161),
    outlet: z.number().int().min(1),
    vendor: z.enum(['apc', 'eaton', 'raritan', 'poe', 'custom']),
    oids: z
      .object({
        on: z.object({ oid: z.string().regex(/^\.?\d+(\.(\d+|\{outlet\}))+$/), value: z.number().int() }),
        off: z.object({ oid: z.string().regex(/^\.?\d+(\.(\d+|\{outlet\}))+$/), value: z.number().int() }),
        get: z.string().regex(/^\.?\d+(\.(\d+|\{outlet\}))+$/),
        onValues: z.array(z.number().int()).optional(),
        offValues: z.array(z.number().int()).optional(),
      })
      .optional(),
    group: z.number().int().min(1).default(1),
    community: z.string().min(1).default('private'),
    readCommunity: z.string().min(1).optional(),
    version: z.enum(['1', '2c']).default('2c'),
    timeoutMs: z.number().int().min(100).default(2000),
  }).refine((p) => p.vendor !== 'custom' || p.oids !== undefined, { path: ['oids'], message: 'vendor "custom" needs oids: { on: { oid, value }, off: { oid, value }, get, onValues, offValues }' }),
]);

const sdMuxSchema = z.discriminatedUnion('driver', [
  z.object({
    driver: z.literal('usbsdmux'),
    /** The mux's SCSI generic device (/dev/sg*, or a /dev/usb-sd-mux/id-… link). */
    control: z.string().min(1),
    /** The block device the host sees in host mode. */
    device: z.string().min(1),
    /** The usbsdmux command (default: usbsdmux on PATH). */
    command: z.string().optional(),
  }),
  z.object({ driver: z.literal('sd-mux-ctrl'), serial: z.string().min(1), device: z.string().min(1), command: z.string().optional() }),
  /** A card reader or a board in USB mass-storage mode: nothing to switch, the device is there when it is. */
  z.object({ driver: z.literal('mass-storage'), device: z.string().min(1) }),
]);

export const boardSchema = z.object({
  /** A machine profile by name or path: what scenarios see (arch, firmware, shell, login). */
  profile: z.string().min(1),
  description: z.string().optional(),
  tags: z.array(z.string().regex(/^[\w.-]+$/)).default([]),
  serial: serialSchema,
  power: powerSchema.and(z.object({ offDelayMs: z.number().int().min(0).default(2000), onDelayMs: z.number().int().min(0).default(0) })),
  sdMux: sdMuxSchema.optional(),
  /** Where SSH reaches the board, if it does. */
  network: z
    .object({
      address: z.string().min(1),
      sshPort: z.number().int().positive().default(22),
      /** SSH user and private key file for ssh() (a scenario may pass its own). */
      user: z.string().default('root'),
      privateKey: z.string().optional(),
    })
    .optional(),
  /** The serial shell's user and password (default: the profile's guest.login). */
  login: z.object({ user: z.string(), password: z.string() }).optional(),
  /**
   * A known-good image its health check flashes through the SD mux (and reads back) before booting it: the board's
   * card is rewritten by every check (relative to the lab file; needs sdMux).
   */
  healthImage: z.string().min(1).optional(),
  /** The lab host the board hangs off (a key of hosts): host-side power commands run there over SSH. */
  host: z.string().optional(),
  /** Budget of the health check, in ms. */
  healthTimeoutMs: z.number().int().positive().default(180_000),
});

export const labSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/),
  /** Lab hosts by name (boards name theirs with host:). */
  hosts: z.record(z.string().regex(/^[\w.-]+$/, 'letters, digits, ".", "-" and "_"'), hostSchema).default({}),
  boards: z.record(z.string().regex(/^[\w.-]+$/, 'letters, digits, ".", "-" and "_"'), boardSchema),
  /** Hand a case only boards whose last health check (fleetlab lab health) passed within this many hours. */
  healthMaxAgeHours: z.number().positive().optional(),
  /** Lease time to live in seconds: a runner that dies loses its boards this long after its last renewal. */
  leaseTtlSeconds: z.number().int().min(5).max(3600).default(30),
  /**
   * Something to do before the lab is used (bring up ser2net, a virtual lab), awaited by each process that uses the
   * lab; it may return a function that undoes it, called when that process is done with the lab.
   */
  provision: z.custom<() => Promise<void | (() => Promise<void>)>>((v) => v === undefined || typeof v === 'function').optional(),
}).superRefine((lab, ctx) => {
  for (const [name, b] of Object.entries(lab.boards)) {
    if (b.host !== undefined && !(b.host in lab.hosts)) ctx.addIssue({ code: 'custom', path: ['boards', name, 'host'], message: `names no host of this lab (hosts: ${Object.keys(lab.hosts).join(', ') || 'none'})` });
  }
});

export type LabInput = z.input<typeof labSchema>;
export type Lab = z.output<typeof labSchema> & { file: string };
export type BoardSpec = z.output<typeof boardSchema>;
export type PowerSpec = BoardSpec['power'];
export type HostSpec = z.output<typeof hostSchema>;
export type SdMuxSpec = NonNullable<BoardSpec['sdMux']>;

/** Declares a lab: export default defineLab({...}) from a lab file. */
export function defineLab(lab: LabInput): LabInput {
  return lab;
}

/** Loads and validates a lab file; a ConfigurationError names the file and each bad field. */
export async function loadLab(file: string): Promise<Lab> {
  const path = resolve(file);
  if (!existsSync(path)) throw new ConfigurationError(`lab file ${file} does not exist; give --lab a lab inventory such as lab/example-virtual.ts`, { details: { file } });
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    throw new ConfigurationError(`lab file ${file} failed to load: ${(err as Error).message}`, { cause: err, details: { file } });
  }
  if (mod.default === undefined) throw new ConfigurationError(`lab file ${file} has no default export; export default defineLab({ name, boards })`, { details: { file } });
  const parsed = labSchema.safeParse(mod.default);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(lab)'}: ${i.message}`).join('\n');
    throw new ConfigurationError(`lab file ${file} is invalid:\n${problems}`, { details: { file, issues: parsed.error.issues } });
  }
  // A host's key file is relative to the lab file.
  const hosts = Object.fromEntries(Object.entries(parsed.data.hosts).map(([n, h]) => [n, { ...h, privateKey: resolve(dirname(path), h.privateKey) }]));
  const boards = Object.fromEntries(Object.entries(parsed.data.boards).map(([n, b]) => [n, b.healthImage ? { ...b, healthImage: resolve(dirname(path), b.healthImage) } : b]));
  for (const [n, b] of Object.entries(boards)) if (b.healthImage && !b.sdMux) throw new ConfigurationError(`lab file ${file} is invalid:\n  - boards.${n}.healthImage: a health image is flashed through the board's SD mux, and it has no sdMux`, { details: { file } });
  return { ...parsed.data, hosts, boards, file: path };
}

/** The boards a selector names: "board:<name>", "tag:<tag>", or a bare board name. */
export function selectBoards(lab: Lab, selector: string): string[] {
  const [kind, value] = selector.includes(':') ? (selector.split(/:(.*)/s) as [string, string]) : ['board', selector];
  if (kind === 'board') {
    if (!lab.boards[value]) throw new ConfigurationError(`lab ${lab.name} (${lab.file}) has no board "${value}"; it has: ${Object.keys(lab.boards).join(', ')}`);
    return [value];
  }
  if (kind === 'tag') {
    const names = Object.entries(lab.boards).filter(([, b]) => b.tags.includes(value)).map(([n]) => n);
    if (!names.length) throw new ConfigurationError(`no board of lab ${lab.name} (${lab.file}) has the tag "${value}"; tags there: ${[...new Set(Object.values(lab.boards).flatMap((b) => b.tags))].join(', ') || '(none)'}`);
    return names;
  }
  throw new ConfigurationError(`"${selector}" names no board: use board:<name> or tag:<tag>`);
}

/** The device path of a board's serial line (a by-id link for a USB serial number), or its TCP address. */
export function serialTarget(b: BoardSpec): { path: string; baud: number } | { tcp: string } | { rfc2217: string; baud: number } {
  const s = b.serial;
  if ('tcp' in s) return { tcp: s.tcp };
  if ('rfc2217' in s) return { rfc2217: s.rfc2217, baud: s.baud };
  if ('device' in s) return { path: s.device, baud: s.baud };
  return { path: `/dev/serial/by-id/${s.usbSerial}`, baud: s.baud };
}
