// batman-adv mesh helpers over the Shell protocol (a VM or a board alike), through batctl: neighbours, originators,
// next hops, the global translation table (which originator each client MAC is behind), waiting for a route, pinging
// an originator.
import { CommandError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { Shell } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom, pollUntil } from '../time/deadline.ts';

/** A row of `batctl originators`. */
export interface Originator {
  originator: string;
  lastSeenMs: number;
  /** Transmit quality, 0..255. */
  tq: number;
  nextHop: string;
  iface: string;
  /** batctl's "*": the route in use. */
  best: boolean;
}

/** A row of `batctl neighbors`. */
export interface Neighbour {
  iface: string;
  neighbour: string;
  lastSeenMs: number;
}

/** A row of `batctl transglobal`: a client MAC (another node's bat0, or a host behind it) and the originator it is behind. */
export interface Translation {
  client: string;
  /** The VLAN, -1 for none. */
  vid: number;
  originator: string;
  /** batctl's "*": the entry in use. */
  best: boolean;
}

/** What a member knows of the mesh, read in one command: its bat0's MAC, its originators, its global translations. */
export interface MeshTables {
  address: string;
  originators: Originator[];
  translations: Translation[];
}

const MAC = '[0-9a-f]{2}(?::[0-9a-f]{2}){5}';
const TRANSLATION = new RegExp(`^\\s*(\\*)?\\s*(${MAC})\\s+(-?\\d+)\\s+\\[[^\\]]*\\]\\s+\\(\\s*\\d+\\)\\s+(${MAC})`);
const ORIGINATOR = /^\s*(\*)?\s*([0-9a-f]{2}(?::[0-9a-f]{2}){5})\s+([\d.]+)s\s+\(\s*(\d+)\)\s+([0-9a-f]{2}(?::[0-9a-f]{2}){5})\s+\[\s*([^\]\s]+)\s*\]/;
const NEIGHBOUR = /^\s*(\S+)\s+([0-9a-f]{2}(?::[0-9a-f]{2}){5})\s+([\d.]+)s/;

/** The batman-adv mesh interface `meshIf` (bat0) of a machine. */
export class BatmanMesh {
  private readonly shell: Shell;
  readonly meshIf: string;

  constructor(shell: Shell, meshIf = 'bat0') {
    this.shell = shell;
    this.meshIf = meshIf;
  }

  async originators(opts?: WaitOptions): Promise<Originator[]> {
    return parseOriginators(await this.shell.succeed(`batctl meshif ${this.meshIf} originators`, opts));
  }

  /** The global translation table: which originator each client MAC it knows is behind. */
  async translations(opts?: WaitOptions): Promise<Translation[]> {
    return parseTranslations(await this.shell.succeed(`batctl meshif ${this.meshIf} transglobal -H`, opts));
  }

  /** Its mesh interface's MAC, originators and translations in one round trip (net.waitConverged() reads these). */
  async tables(opts?: WaitOptions): Promise<MeshTables> {
    const m = this.meshIf;
    const out = await this.shell.succeed(`cat /sys/class/net/${m}/address && batctl meshif ${m} originators && echo @@fleetlab-tg@@ && batctl meshif ${m} transglobal -H`, opts);
    const [head, tg = ''] = out.split('@@fleetlab-tg@@');
    return { address: head!.trim().split('\n')[0]!.trim().toLowerCase(), originators: parseOriginators(head!), translations: parseTranslations(tg) };
  }

  async neighbours(opts?: WaitOptions): Promise<Neighbour[]> {
    const out = await this.shell.succeed(`batctl meshif ${this.meshIf} neighbors`, opts);
    return out.split('\n').flatMap((l) => {
      const m = NEIGHBOUR.exec(l);
      return m ? [{ iface: m[1]!, neighbour: m[2]!, lastSeenMs: Math.round(Number(m[3]) * 1000) }] : [];
    });
  }

  /** The next hop of the route in use to originator `dest` (a MAC), if there is one. */
  async nextHop(dest: string, opts?: WaitOptions): Promise<string | undefined> {
    return (await this.originators(opts)).find((o) => o.best && o.originator === dest.toLowerCase())?.nextHop;
  }

  /** Waits until there is a route to originator `dest` (a MAC); resolves with its next hop. */
  async waitForRoute(dest: string, opts?: WaitOptions): Promise<string> {
    const deadline = deadlineFrom(opts, 120_000, `mesh route from ${this.shell.machineName} to ${dest}`, 'pass { timeout } to waitForMeshRoute()');
    // Until the first hard interface is active, batctl fails ("mesh disabled"): that is no route yet, not an error.
    const probe = () => this.nextHop(dest, { deadline, signal: opts?.signal }).catch((err: unknown) => {
      if (err instanceof CommandError) return undefined;
      throw err;
    });
    const r = await pollUntil(probe, { deadline, intervalMs: 250, signal: opts?.signal, awaited: `a mesh route to ${dest}` });
    if (r.timedOut) {
      const seen = await this.originators({ timeout: 10_000 }).catch(() => []);
      throw new TimeoutError('test-failure', { awaited: `a batman-adv route from ${this.shell.machineName} to ${dest} (originators now: ${seen.map((o) => `${o.originator} via ${o.nextHop}`).join(', ') || 'none'})`, deadline, machine: this.shell.machineName });
    }
    return r.value;
  }

  /** batctl ping to originator `dest`: true if an answer came within `waitS` seconds. */
  async ping(dest: string, opts: WaitOptions & { count?: number; waitS?: number } = {}): Promise<boolean> {
    const r = await this.shell.execute(`batctl meshif ${this.meshIf} ping -c ${opts.count ?? 1} -t ${opts.waitS ?? 1} ${dest}`, opts);
    return r.exitCode === 0;
  }
}

function parseOriginators(out: string): Originator[] {
  return out.split('\n').flatMap((l) => {
    const m = ORIGINATOR.exec(l);
    return m ? [{ best: !!m[1], originator: m[2]!, lastSeenMs: Math.round(Number(m[3]) * 1000), tq: Number(m[4]), nextHop: m[5]!, iface: m[6]! }] : [];
  });
}

/** The rows of `batctl transglobal` (with or without its header). */
export function parseTranslations(out: string): Translation[] {
  return out.split('\n').flatMap((l) => {
    const m = TRANSLATION.exec(l);
    return m ? [{ best: !!m[1], client: m[2]!, vid: Number(m[3]), originator: m[4]! }] : [];
  });
}
