// fleetlab's network fabric: a userspace Ethernet switch for a case's networks. Each machine's NIC is a QEMU
// `-netdev dgram` talking UDP on 127.0.0.1 to a port of the switch; nothing leaves 127.0.0.1, and guest subnets exist
// only here. A network is a switched LAN (every member reaches every other) or a set of explicit point-to-point links
// (a radio-like mesh: a frame reaches only the neighbours linked to its sender). Every directed link can be cut, made
// lossy, delayed, jittered, rate-limited, made to duplicate or reorder frames; partitions cut every link across groups.
// Frames are captured per network.
// This module is the model and the API; the frames go through fleetlab-switch (switch/fleetlab-switch.c), a native
// helper this process supervises and drives (switch-helper.ts): a switch in the runner's event loop added several
// times the latency of a bare C relay between guests (docs/design-decisions.md).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { freeUdpPort } from './free-port.ts';
import { distance, radioConditions, radioProblem, radioWithDefaults, type Radio, type RadioModel } from './radio.ts';
import { SwitchHelper } from './switch-helper.ts';

/** What happens to frames on one directed link (sender -> receiver). */
export interface LinkConditions {
  up: boolean;
  /** Probability in [0, 1] that a frame is dropped. */
  loss: number;
  delayMs: number;
  /** Up to this much more delay, uniformly at random (frames may then be reordered). */
  jitterMs: number;
  /** Throughput limit in kbit/s; 0 for none. */
  rateKbit: number;
  /** Probability in [0, 1] that a frame is delivered twice. */
  duplicate: number;
  /** Probability in [0, 1] that a frame is held back 2 ms (the switch's REORDER_HOLD_NS), so frames sent after it overtake it. */
  reorder: number;
}

const FREE: LinkConditions = { up: true, loss: 0, delayMs: 0, jitterMs: 0, rateKbit: 0, duplicate: 0, reorder: 0 };

/**
 * How a scenario declares a network: its members (a LAN), or links between pairs (a mesh of radio-like links);
 * `batman: true` makes the testbed join its NIC to a batman-adv mesh (bat0), which then carries the address, sending
 * originator messages every 250 ms (routes follow a cut in seconds under TCG); `batman: { origIntervalMs: 1000 }`
 * sets that interval (1000 is batman-adv's own default: a fleet idles cheaper and converges slower). `positions`
 * place the members on a plane for report.html's picture of the network (a topology sets them); with `radio` (radio.ts)
 * every pair in range is a link whose loss and delay follow from its length, and ctx.net.move() moves a member.
 * `broadcastWindowMs` makes broadcast and multicast frames (batman-adv's OGMs, ARP, neighbour discovery) wait for the
 * end of the current window of that many ms and arrive together, as a radio's beacon interval batches them: a guest
 * wakes once a window instead of once a frame (a fleet idles cheaper); unicast frames are not held.
 */
export type NetworkSpec = string[] | { links: Array<[string, string]>; batman?: boolean | BatmanOptions; positions?: Record<string, [number, number]>; radio?: RadioModel; broadcastWindowMs?: number };

/** A batman-adv mesh's settings, per network. */
export interface BatmanOptions {
  /** Originator message interval in ms (batctl orig_interval); 250 unless set. */
  origIntervalMs?: number;
}

/** The testbed's OGM interval when a network does not set one: fast convergence for tests. */
export const DEFAULT_ORIG_INTERVAL_MS = 250;

/** A network's batman-adv settings with their defaults; undefined when it is no batman-adv mesh. */
export function batmanOf(spec: NetworkSpec): { origIntervalMs: number } | undefined {
  const bm = Array.isArray(spec) ? undefined : spec.batman;
  if (!bm) return undefined;
  return { origIntervalMs: (typeof bm === 'object' ? bm.origIntervalMs : undefined) ?? DEFAULT_ORIG_INTERVAL_MS };
}

/** One machine's NIC on one network, as QEMU and the guest need it. */
export interface NicPlan {
  network: string;
  mac: string;
  /** The guest's address on this network and its prefix length. */
  address: string;
  prefix: number;
  /** The switch's UDP port for this NIC, and the one QEMU binds (both on 127.0.0.1). */
  switchPort: number;
  qemuPort: number;
  /** The guest joins this NIC to its batman-adv mesh (bat0 carries the address), at this OGM interval; undefined for none. */
  batman?: { origIntervalMs: number };
  /** Every machine on this network (itself too) and its address there: the guest's /etc/hosts names them. */
  peers: Array<{ name: string; address: string }>;
  /**
   * The scenario's machines on networks this one is not on, each at its address there: named too (NTD's nodes resolve
   * every node, on a network they share or not; a router's routes may reach them).
   */
  others: Array<{ name: string; network: string; address: string }>;
}

/** Counters of one directed link. */
export interface LinkStats {
  delivered: number;
  dropped: number;
  /** Extra copies delivered, and frames held back for reordering. */
  duplicated: number;
  reordered: number;
}

/** The machines a network joins: a LAN's members, or every machine a mesh link names (in order of first mention). */
export function networkMembers(spec: NetworkSpec): string[] {
  if (Array.isArray(spec)) return [...spec];
  // On a radio network a member out of everyone's range (no link yet) is a member still: its place says so.
  return [...new Set([...spec.links.flat(), ...(spec.radio && spec.positions && typeof spec.positions === 'object' ? Object.keys(spec.positions) : [])])];
}

/** The subnet of the network at `index`: 198.18.0.0/15 (RFC 2544's benchmarking range), one /24 each. */
function subnet(index: number): string {
  if (index > 511) throw new ConfigurationError(`a scenario may declare at most 512 networks (got ${index + 1})`);
  return `198.${18 + Math.floor(index / 256)}.${index % 256}`;
}

/** A stable, locally administered MAC for `machine` on `network` in `scenario`. */
export function stableMac(scenario: string, machine: string, network: string): string {
  const h = createHash('sha256').update(`${scenario}\0${machine}\0${network}`).digest();
  return ['52', '54', h[0]!.toString(16).padStart(2, '0'), h[1]!.toString(16).padStart(2, '0'), h[2]!.toString(16).padStart(2, '0'), h[3]!.toString(16).padStart(2, '0')].join(':');
}

/** A libpcap file header (nanosecond stamps, linktype Ethernet): a network's capture before its first frame. */
const PCAP_HEADER = Buffer.from('4d3cb2a1020004000000000000000000ffff000001000000', 'hex');

/** One network of the fabric: its members, who can hear whom, and the conditions of each directed link. */
export class Network {
  readonly name: string;
  readonly members: string[];
  readonly subnet: string;
  /** The network's capture: its libpcap file, and how many frames the switch has written to it. */
  readonly pcap: { readonly path: string; readonly frames: number };
  /** Guests join their NIC to a batman-adv mesh with these settings; undefined for none. */
  batman: { origIntervalMs: number } | undefined;
  /** Declared by its links (a mesh), not as a list of members (a LAN). */
  readonly mesh: boolean;
  /** Where its members lie on a plane (a topology's layout), for report.html and its radio model. */
  positions: Record<string, [number, number]> | undefined;
  /** Its radio model: links' conditions from the distance between their ends (radio.ts); undefined for none. */
  radio: Radio | undefined;
  /** Broadcasts wait for the end of a window of this many ms and arrive together; undefined: sent at once. */
  broadcastWindowMs: number | undefined;
  /** Every frame on its links dropped, whatever their conditions (hold()), until release(). */
  private held = false;
  /** Each partition, with when it was made (epoch ms): report.html draws its islands. */
  readonly partitions: Array<{ t: number; groups: string[][] }> = [];
  /** Index in the fabric, and where its counters start in the switch's counters file (in u64 words). */
  readonly index: number;
  readonly counterOffset: number;
  private readonly neighbours = new Map<string, Set<string>>();
  /** Directed links: from -> to -> conditions; the switch holds a copy. */
  private readonly links = new Map<string, Map<string, LinkConditions>>();
  private readonly log: (event: string) => void;
  private readonly fabric: Fabric;

  constructor(fabric: Fabric, index: number, counterOffset: number, name: string, members: string[], links: Array<[string, string]> | undefined, subnetPrefix: string, pcapPath: string, log: (event: string) => void) {
    this.fabric = fabric;
    this.index = index;
    this.counterOffset = counterOffset;
    this.name = name;
    this.members = members;
    this.mesh = links !== undefined;
    this.subnet = subnetPrefix;
    this.log = log;
    // The capture exists (empty) from the start; the switch rewrites it when it starts.
    mkdirSync(dirname(pcapPath), { recursive: true });
    writeFileSync(pcapPath, PCAP_HEADER);
    const self = this;
    this.pcap = {
      path: pcapPath,
      get frames() {
        return self.fabric.counters(self.counterOffset, 1)[0]!;
      },
    };
    for (const m of members) this.neighbours.set(m, new Set());
    const pairs = links ?? members.flatMap((a, i) => members.slice(i + 1).map((b) => [a, b] as [string, string]));
    for (const [a, b] of pairs) {
      this.neighbours.get(a)!.add(b);
      this.neighbours.get(b)!.add(a);
    }
    for (const [a, ns] of this.neighbours) this.links.set(a, new Map([...ns].map((b) => [b, { ...FREE }])));
  }

  /** The switch's commands that declare this network and bring its links to their present conditions. */
  setupCommands(): string[] {
    const idx = (m: string) => this.members.indexOf(m);
    const lines = [`net ${this.index} ${this.members.length} ${this.pcap.path}`];
    if (this.broadcastWindowMs) lines.push(`window ${this.index} ${this.broadcastWindowMs}`);
    for (const [a, ns] of this.neighbours) for (const b of ns) if (idx(a) < idx(b)) lines.push(`nb ${this.index} ${idx(a)} ${idx(b)}`);
    return lines;
  }

  /** `set` commands for every link whose conditions differ from a free link's (every link while held). */
  conditionCommands(): string[] {
    if (this.held) return this.everySetCommand();
    return this.changedLinks().map(([a, b, c]) => this.setCommand(a, b, c));
  }

  /**
   * Drops every frame on its links until release(), their conditions unchanged (what a scenario sets meanwhile is
   * kept and applies on release): a fleet's mesh while the fleet starts, so that its first nodes do not forward each
   * other's originator messages while the rest wait for the CPU to restore.
   */
  hold(): void {
    if (this.held) return;
    this.held = true;
    this.fabric.send(this.conditionCommands());
    this.log(`network ${this.name}: held (every frame dropped) while its machines start`);
  }

  /** Ends hold(): every link as its conditions say. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.fabric.send(this.everySetCommand());
    this.log(`network ${this.name}: released (links as their conditions say)`);
  }

  /** The directed links whose conditions differ from a free link's, as [from, to, conditions] (what a checkpoint keeps). */
  changedLinks(): Array<[string, string, LinkConditions]> {
    const changed: Array<[string, string, LinkConditions]> = [];
    for (const [a, out] of this.links) for (const [b, c] of out) if (Object.entries(FREE).some(([k, v]) => c[k as keyof LinkConditions] !== v)) changed.push([a, b, { ...c }]);
    return changed;
  }

  /** Every link free again but `changed` (from changedLinks()), told to the switch: a checkpoint's links restored. */
  restoreLinks(changed: Array<[string, string, LinkConditions]>): void {
    for (const out of this.links.values()) for (const c of out.values()) Object.assign(c, FREE);
    for (const [a, b, c] of changed) {
      this.requireLink(a, b);
      Object.assign(this.links.get(a)!.get(b)!, c);
    }
    this.fabric.send(this.everySetCommand());
    if (changed.length) this.log(`network ${this.name}: links as the checkpoint had them (${changed.length} directed link(s) not free)`);
  }

  /** A `set` command for every directed link, as its conditions (and a hold) say. */
  private everySetCommand(): string[] {
    return [...this.links].flatMap(([a, out]) => [...out].map(([b, c]) => this.setCommand(a, b, c)));
  }

  private setCommand(from: string, to: string, c: LinkConditions): string {
    return `set ${this.index} ${this.members.indexOf(from)} ${this.members.indexOf(to)} ${c.up && !this.held ? 1 : 0} ${c.loss} ${c.delayMs} ${c.jitterMs} ${c.rateKbit} ${c.duplicate} ${c.reorder}`;
  }

  /** The address of `machine` here. */
  address(machine: string): string {
    const i = this.members.indexOf(machine);
    if (i < 0) throw new ConfigurationError(`machine ${machine} is not on network ${this.name} (members: ${this.members.join(', ')})`);
    return `${this.subnet}.${i + 10}`;
  }

  /** The conditions of the directed link from -> to (a copy). */
  linkConditions(from: string, to: string): LinkConditions {
    return { ...(this.links.get(from)?.get(to) ?? FREE) };
  }

  /** Counters of the directed link from -> to, as the switch has them now. */
  linkStats(from: string, to: string): LinkStats {
    const f = this.members.indexOf(from);
    const t = this.members.indexOf(to);
    if (f < 0 || t < 0 || !this.links.get(from)?.has(to)) return { delivered: 0, dropped: 0, duplicated: 0, reordered: 0 };
    const [delivered, dropped, duplicated, reordered] = this.fabric.counters(this.counterOffset + 1 + 4 * (f * this.members.length + t), 4) as [number, number, number, number];
    return { delivered, dropped, duplicated, reordered };
  }

  /** Changes the link between `a` and `b`: both directions, or only `a -> b` with `{ oneWay: true }`. */
  setLink(a: string, b: string, change: Partial<LinkConditions>, opts: { oneWay?: boolean } = {}): void {
    this.requireLink(a, b);
    for (const [k, v] of Object.entries(change)) {
      if (k === 'up') continue;
      if (!(k in FREE)) throw new ConfigurationError(`network ${this.name}: link ${a}-${b}: unknown condition "${k}" (have: ${Object.keys(FREE).filter((x) => x !== 'up').join(', ')})`);
      const probability = k === 'loss' || k === 'duplicate' || k === 'reorder';
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (probability && v > 1)) {
        throw new ConfigurationError(`network ${this.name}: link ${a}-${b}: ${k} = ${JSON.stringify(v)}; expected ${probability ? 'a probability from 0 to 1' : 'a number >= 0'}`);
      }
    }
    const dirs: Array<[string, string]> = opts.oneWay ? [[a, b]] : [[a, b], [b, a]];
    for (const [from, to] of dirs) Object.assign(this.links.get(from)!.get(to)!, change);
    this.fabric.send(dirs.map(([from, to]) => this.setCommand(from, to, this.links.get(from)!.get(to)!)));
    this.log(`network ${this.name}: ${a} ${opts.oneWay ? '->' : '<->'} ${b} ${describeChange(change)}`);
  }

  /** Cuts every link between machines of different groups (both ways); links inside a group are left as they are. */
  partition(groups: string[][]): void {
    const group = new Map<string, number>();
    groups.forEach((g, i) => g.forEach((m) => {
      if (!this.members.includes(m)) throw new ConfigurationError(`partition of network ${this.name}: machine ${m} is not on it (members: ${this.members.join(', ')})`);
      if (group.has(m)) throw new ConfigurationError(`partition of network ${this.name}: machine ${m} is in two groups`);
      group.set(m, i);
    }));
    const cut = this.setUp(false, (a, b) => {
      const ga = group.get(a);
      const gb = group.get(b);
      return ga !== undefined && gb !== undefined && ga !== gb;
    });
    this.partitions.push({ t: Date.now(), groups: groups.map((g) => [...g]) });
    this.log(`network ${this.name}: partitioned into ${groups.map((g) => `[${g.join(', ')}]`).join(' | ')} (${cut / 2} links cut)`);
  }

  /** Its links (each pair once, up when both ways are), for a picture of the network. */
  linkPairs(): Array<{ a: string; b: string; up: boolean }> {
    const out: Array<{ a: string; b: string; up: boolean }> = [];
    for (const [a, ns] of this.neighbours) for (const b of ns) if (a < b) out.push({ a, b, up: this.linkConditions(a, b).up && this.linkConditions(b, a).up });
    return out;
  }

  /** Brings every link up again (loss, delay and rate settings stay); on a radio network, every link in range. */
  heal(): void {
    if (this.radio) this.fabric.send(this.applyRadio(undefined, true));
    else this.setUp(true, () => true);
    this.log(`network ${this.name}: healed (every link ${this.radio ? 'in range ' : ''}up)`);
  }

  /** Holds its broadcasts to the end of windows of `ms` from now on (1 to 1000), or sends them at once (undefined). */
  setBroadcastWindow(ms: number | undefined): void {
    if (ms !== undefined && (!Number.isInteger(ms) || ms < 1 || ms > 1000)) throw new ConfigurationError(`network ${this.name}: broadcast window ${JSON.stringify(ms)} is not a whole number of milliseconds from 1 to 1000 (undefined: no window)`);
    this.broadcastWindowMs = ms;
    this.fabric.send([`window ${this.index} ${ms ?? 0}`]);
    this.log(`network ${this.name}: ${ms ? `broadcasts in windows of ${ms} ms` : 'broadcasts sent at once'}`);
  }

  /**
   * Sets the links of `only` (default every member) as the radio model has them at the members' positions; returns
   * the switch's commands for the links it changed (all of them with `all`), sent by the caller once the switch runs.
   */
  applyRadio(only?: string, all = false): string[] {
    const commands: string[] = [];
    for (const [a, out] of this.links) {
      for (const [b, c] of out) {
        if (only !== undefined && a !== only && b !== only) continue;
        const next = radioConditions(distance(this.positions![a]!, this.positions![b]!), this.radio!);
        if (!all && next.up === c.up && next.loss === c.loss && next.delayMs === c.delayMs) continue;
        Object.assign(c, next);
        commands.push(this.setCommand(a, b, c));
      }
    }
    return commands;
  }

  /** Moves `machine` to (x, y) on a radio network: its links come up, go down and change with the distances. */
  move(machine: string, x: number, y: number): void {
    if (!this.radio) throw new ConfigurationError(`network ${this.name} has no radio model: net.move() moves machines on networks with radio: { range }`);
    if (!this.members.includes(machine)) throw new ConfigurationError(`net.move(${machine}): it is not on network ${this.name} (members: ${this.members.join(', ')})`);
    if (![x, y].every(Number.isFinite)) throw new ConfigurationError(`net.move(${machine}, ${x}, ${y}): a place is two finite numbers`);
    this.positions![machine] = [x, y];
    this.fabric.send(this.applyRadio(machine));
    const inRange = this.members.filter((m) => m !== machine && this.linkConditions(machine, m).up);
    this.log(`network ${this.name}: ${machine} moved to (${x}, ${y}): in range of ${inRange.length ? inRange.join(', ') : 'none'}`);
  }

  /** Sets `up` on every directed link `which` picks and tells the switch; how many it picked. */
  private setUp(up: boolean, which: (from: string, to: string) => boolean): number {
    const commands: string[] = [];
    for (const [a, out] of this.links) {
      for (const [b, c] of out) {
        if (!which(a, b)) continue;
        c.up = up;
        commands.push(this.setCommand(a, b, c));
      }
    }
    this.fabric.send(commands);
    return commands.length;
  }

  private requireLink(a: string, b: string): void {
    if (!this.neighbours.get(a)?.has(b)) throw new ConfigurationError(`network ${this.name} has no link between ${a} and ${b} (members: ${this.members.join(', ')})`);
  }
}

function describeChange(c: Partial<LinkConditions>): string {
  const parts: string[] = [];
  if (c.up !== undefined) parts.push(c.up ? 'up' : 'down');
  if (c.loss !== undefined) parts.push(`loss ${Math.round(c.loss * 100)} %`);
  if (c.delayMs !== undefined) parts.push(`delay ${c.delayMs} ms`);
  if (c.jitterMs !== undefined) parts.push(`jitter ${c.jitterMs} ms`);
  if (c.rateKbit !== undefined) parts.push(c.rateKbit ? `rate ${c.rateKbit} kbit/s` : 'no rate limit');
  if (c.duplicate !== undefined) parts.push(`duplicate ${Math.round(c.duplicate * 100)} %`);
  if (c.reorder !== undefined) parts.push(`reorder ${Math.round(c.reorder * 100)} %`);
  return parts.join(', ');
}

/** Each network's links that are not free, as [from, to, conditions], by network name (what a checkpoint keeps). */
export type LinkState = Record<string, Array<[string, string, LinkConditions]>>;

/** The networks of one case: built from the scenario's declaration, checked before anything boots. */
export class Fabric {
  readonly networks = new Map<string, Network>();
  private readonly events: Array<{ at: string; event: string }> = [];
  private readonly onEvent: (event: string) => void;

  /** Checks `specs` against the scenario's machines; throws a ConfigurationError naming the network and machine. */
  static validate(specs: Record<string, NetworkSpec>, machines: string[], where: string): void {
    for (const [name, spec] of Object.entries(specs)) {
      if (!/^[a-z][a-z0-9_-]*$/.test(name)) throw new ConfigurationError(`${where}: network name "${name}": use lower-case letters, digits, - and _ (it names a pcap file and a NIC).`);
      const bad = (msg: string) => new ConfigurationError(`${where}: network ${name}: ${msg}`, { details: { network: name } });
      if (Array.isArray(spec)) {
        if (!spec.length) throw bad('has no members');
        for (const m of spec) if (!machines.includes(m)) throw bad(`member "${m}" is not a machine of this scenario (machines: ${machines.join(', ')})`);
        if (new Set(spec).size !== spec.length) throw bad('names a member twice');
      } else if (spec && Array.isArray(spec.links)) {
        const seen = new Set<string>();
        for (const link of spec.links) {
          if (!Array.isArray(link) || link.length !== 2) throw bad(`a link must be a pair of machine names, got ${JSON.stringify(link)}`);
          const [a, b] = link;
          for (const m of link) if (!machines.includes(m)) throw bad(`link [${a}, ${b}]: "${m}" is not a machine of this scenario (machines: ${machines.join(', ')})`);
          if (a === b) throw bad(`link [${a}, ${b}] joins a machine to itself`);
          const key = [a, b].sort().join('\0');
          if (seen.has(key)) throw bad(`link [${a}, ${b}] is declared twice`);
          seen.add(key);
        }
        const bm = spec.batman;
        if (bm !== undefined && typeof bm !== 'boolean') {
          if (typeof bm !== 'object' || bm === null || Array.isArray(bm)) throw bad(`batman: expected true, false or { origIntervalMs }, got ${JSON.stringify(bm)}`);
          const extra = Object.keys(bm).filter((k) => k !== 'origIntervalMs');
          if (extra.length) throw bad(`batman: unknown setting ${extra.map((k) => `"${k}"`).join(', ')} (known: origIntervalMs)`);
          const iv = bm.origIntervalMs;
          if (iv !== undefined && (!Number.isInteger(iv) || iv < 50 || iv > 60_000)) throw bad(`batman.origIntervalMs: ${JSON.stringify(iv)} is not a whole number of milliseconds from 50 to 60000 (batman-adv's default is 1000; the testbed's 250)`);
        }
        const w = spec.broadcastWindowMs;
        if (w !== undefined && (!Number.isInteger(w) || w < 1 || w > 1000)) throw bad(`broadcastWindowMs: ${JSON.stringify(w)} is not a whole number of milliseconds from 1 to 1000 (fleets use 100)`);
        const radio = spec.radio === undefined ? undefined : radioProblem(spec.radio, networkMembers(spec), spec.positions);
        if (radio) throw bad(`radio: ${radio}`);
        for (const [m, p] of Object.entries(spec.positions ?? {})) {
          if (!machines.includes(m)) throw bad(`positions: "${m}" is not a machine of this scenario (machines: ${machines.join(', ')})`);
          if (!networkMembers(spec).includes(m)) throw bad(`positions: "${m}" is not on this network`);
          if (!Array.isArray(p) || p.length !== 2 || !p.every(Number.isFinite)) throw bad(`positions.${m}: expected [x, y], got ${JSON.stringify(p)}`);
        }
      } else {
        throw bad(`expected a list of members (a LAN) or { links: [[a, b], ...] } (a mesh), got ${JSON.stringify(spec)}`);
      }
    }
    // A machine has one batman-adv mesh interface (bat0), whatever batman networks its NICs are on: one interval.
    const interval = new Map<string, [string, number]>();
    for (const [name, spec] of Object.entries(specs)) {
      if (!batmanOf(spec)) continue;
      const ms = batmanOf(spec)!.origIntervalMs;
      for (const m of networkMembers(spec)) {
        const seen = interval.get(m);
        if (seen && seen[1] !== ms) throw new ConfigurationError(`${where}: machine ${m} is on batman-adv networks ${seen[0]} (OGM every ${seen[1]} ms) and ${name} (${ms} ms), but a machine has one mesh interface (bat0) and so one interval: give both networks the same batman.origIntervalMs.`, { details: { network: name, machine: m } });
        interval.set(m, [name, ms]);
      }
    }
  }

  /**
   * `onSwitchExit` hears of the switch helper exiting before close(): every machine on these networks is cut off, an
   * infrastructure error that should end the case's waits.
   */
  constructor(specs: Record<string, NetworkSpec>, opts: { pcapDir: string; onEvent?: (event: string) => void; onSwitchExit?: (error: InfrastructureError) => void }) {
    this.onEvent = opts.onEvent ?? (() => undefined);
    this.onSwitchExit = opts.onSwitchExit ?? (() => undefined);
    let offset = 0;
    Object.entries(specs).forEach(([name, spec], i) => {
      const members = networkMembers(spec);
      // A radio network's possible links are every pair; which are up, and how lossy, its model says (radio.ts).
      const links = Array.isArray(spec) ? undefined : spec.radio ? members.flatMap((a, k) => members.slice(k + 1).map((b) => [a, b] as [string, string])) : spec.links;
      const net = new Network(this, i, offset, name, members, links, subnet(i), `${opts.pcapDir}/${name}.pcap`, (e) => this.record(e));
      offset += 1 + 4 * members.length * members.length;
      net.batman = batmanOf(spec);
      net.broadcastWindowMs = Array.isArray(spec) ? undefined : spec.broadcastWindowMs;
      net.positions = Array.isArray(spec) || !spec.positions ? undefined : { ...spec.positions };
      if (!Array.isArray(spec) && spec.radio) {
        net.radio = radioWithDefaults(spec.radio);
        net.applyRadio();
      }
      this.networks.set(name, net);
    });
  }

  private readonly onSwitchExit: (error: InfrastructureError) => void;
  private helper: SwitchHelper | undefined;
  private starting: Promise<SwitchHelper> | undefined;
  private closed = false;

  /** Starts the switch (once): compiled on first use, then declared every network and the links' conditions. */
  private start(): Promise<SwitchHelper> {
    if (this.closed) return Promise.reject(new InfrastructureError('the network fabric is closed'));
    this.starting ??= (async () => {
      const nets = [...this.networks.values()];
      const names = nets.map((n) => n.name).join(', ');
      const helper = await SwitchHelper.start(nets.flatMap((n) => n.setupCommands()), (line) => this.record(`switch: ${line}`));
      this.helper = helper;
      helper.send(nets.flatMap((n) => n.conditionCommands()));
      void helper.ended.then(({ unexpected, error }) => {
        if (!unexpected) return;
        const message = `the switch of network${nets.length > 1 ? 's' : ''} ${names} (fleetlab-switch[${helper.pid}]) ended while the case ran; the machines on ${nets.length > 1 ? 'them' : 'it'} are cut off.\n${error.message}`;
        this.record(message.split('\n')[0]!);
        this.onSwitchExit(new InfrastructureError(message, { details: { networks: nets.map((n) => n.name) } }));
      });
      return helper;
    })();
    return this.starting;
  }

  /** Commands for the switch, if it runs (a switch started later is told the model's state then). */
  send(lines: string[]): void {
    this.helper?.send(lines);
  }

  /** Counters from the switch (zeros before it starts). */
  counters(offset: number, count: number): number[] {
    return this.helper ? this.helper.counters(offset, count) : new Array<number>(count).fill(0);
  }

  /** The switch helper's pid, once it runs. */
  get switchPid(): number | undefined {
    return this.helper?.pid;
  }

  private record(event: string): void {
    this.events.push({ at: new Date().toISOString(), event });
    this.onEvent(event);
  }

  /** Every change made to the networks, with its time. */
  get log(): Array<{ at: string; event: string }> {
    return [...this.events];
  }

  /** The network called `name`; a configuration error naming the declared ones otherwise. */
  network(name: string): Network {
    const n = this.networks.get(name);
    if (!n) throw new ConfigurationError(`no network "${name}" in this scenario (have: ${[...this.networks.keys()].join(', ') || 'none'})`);
    return n;
  }

  /** Each network's links that are not free (a checkpoint keeps them with its machines). */
  linkState(): LinkState {
    return Object.fromEntries([...this.networks].map(([name, n]) => [name, n.changedLinks()]));
  }

  /** Sets every network's links as linkState() gave them. */
  restoreLinkState(state: LinkState): void {
    for (const [name, links] of Object.entries(state)) this.network(name).restoreLinks(links);
  }

  /** Opens the switch ports of `machine` (one per network it is on) and says how QEMU and the guest join them. */
  async plan(scenario: string, machine: string): Promise<NicPlan[]> {
    const nics: NicPlan[] = [];
    const others = [...this.networks.values()].filter((n) => !n.members.includes(machine)).flatMap((n) => n.members.map((m) => ({ name: m, network: n.name, address: n.address(m) })));
    for (const net of this.networks.values()) {
      if (!net.members.includes(machine)) continue;
      const helper = await this.start();
      const qemuPort = await freeUdpPort();
      const switchPort = await helper.openPort(net.index, net.members.indexOf(machine), qemuPort);
      nics.push({ network: net.name, mac: stableMac(scenario, machine, net.name), address: net.address(machine), prefix: 24, switchPort, qemuPort, batman: net.batman, peers: net.members.map((m) => ({ name: m, address: net.address(m) })), others });
    }
    return nics;
  }

  /** Stops the switch; its captures are written out. */
  async close(): Promise<void> {
    this.closed = true;
    const helper = await this.starting?.catch(() => undefined);
    await helper?.close();
  }
}
