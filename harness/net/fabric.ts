// fleetlab's network fabric: a userspace Ethernet switch in the runner. Each machine's NIC is a QEMU `-netdev dgram`
// talking UDP on 127.0.0.1 to a port of this switch; nothing leaves 127.0.0.1, and guest subnets exist only here.
// A network is a switched LAN (every member reaches every other) or a set of explicit point-to-point links (a
// radio-like mesh: a frame reaches only the neighbours linked to its sender). Every directed link can be cut, made
// lossy, delayed, jittered, rate-limited, made to duplicate or reorder frames; partitions cut every link across groups.
// Frames are captured per network.
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { freeUdpPort } from './free-port.ts';
import { PcapWriter } from './pcap-writer.ts';

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
  /** Probability in [0, 1] that a frame is held back REORDER_HOLD_MS, so frames sent after it overtake it. */
  reorder: number;
}

const FREE: LinkConditions = { up: true, loss: 0, delayMs: 0, jitterMs: 0, rateKbit: 0, duplicate: 0, reorder: 0 };
/** How long a frame picked for reordering is held back. */
export const REORDER_HOLD_MS = 2;

/** One directed link's state, looked up once per frame. */
interface DirectedLink {
  conditions: LinkConditions;
  stats: LinkStats;
  /** When the link finishes sending the frames queued by its rate limit (performance.now()). */
  busyUntil: number;
}

/**
 * How a scenario declares a network: its members (a LAN), or links between pairs (a mesh of radio-like links);
 * `batman: true` makes the testbed join its NIC to a batman-adv mesh (bat0), which then carries the address.
 */
export type NetworkSpec = string[] | { links: Array<[string, string]>; batman?: boolean };

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
  /** The guest joins this NIC to its batman-adv mesh (bat0 carries the address). */
  batman: boolean;
}

/** Counters of one directed link. */
export interface LinkStats {
  delivered: number;
  dropped: number;
  /** Extra copies delivered, and frames held back for reordering. */
  duplicated: number;
  reordered: number;
}

interface Port {
  machine: string;
  network: Network;
  socket: Socket;
  qemuPort: number;
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

/** One network of the fabric: its members, who can hear whom, and the conditions of each directed link. */
export class Network {
  readonly name: string;
  readonly members: string[];
  readonly pcap: PcapWriter;
  readonly subnet: string;
  /** Guests join their NIC to a batman-adv mesh. */
  batman = false;
  private readonly neighbours = new Map<string, Set<string>>();
  /** Directed links: from -> to -> state. */
  private readonly links = new Map<string, Map<string, DirectedLink>>();
  readonly ports = new Map<string, Port>();
  private readonly macs = new Map<string, string>();
  private readonly log: (event: string) => void;

  constructor(name: string, members: string[], links: Array<[string, string]> | undefined, subnetPrefix: string, pcapPath: string, log: (event: string) => void) {
    this.name = name;
    this.members = members;
    this.subnet = subnetPrefix;
    this.pcap = new PcapWriter(pcapPath);
    this.log = log;
    for (const m of members) this.neighbours.set(m, new Set());
    const pairs = links ?? members.flatMap((a, i) => members.slice(i + 1).map((b) => [a, b] as [string, string]));
    for (const [a, b] of pairs) {
      this.neighbours.get(a)!.add(b);
      this.neighbours.get(b)!.add(a);
    }
    for (const [a, ns] of this.neighbours) {
      const out = new Map<string, DirectedLink>();
      for (const b of ns) out.set(b, { conditions: { ...FREE }, stats: { delivered: 0, dropped: 0, duplicated: 0, reordered: 0 }, busyUntil: 0 });
      this.links.set(a, out);
    }
  }

  private link(from: string, to: string): DirectedLink | undefined {
    return this.links.get(from)?.get(to);
  }

  /** The address of `machine` here. */
  address(machine: string): string {
    const i = this.members.indexOf(machine);
    if (i < 0) throw new ConfigurationError(`machine ${machine} is not on network ${this.name} (members: ${this.members.join(', ')})`);
    return `${this.subnet}.${i + 10}`;
  }

  /** The conditions of the directed link from -> to (a copy). */
  linkConditions(from: string, to: string): LinkConditions {
    return { ...(this.link(from, to)?.conditions ?? FREE) };
  }

  /** Counters of the directed link from -> to. */
  linkStats(from: string, to: string): LinkStats {
    return { ...(this.link(from, to)?.stats ?? { delivered: 0, dropped: 0, duplicated: 0, reordered: 0 }) };
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
    for (const [from, to] of dirs) Object.assign(this.link(from, to)!.conditions, change);
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
    let cut = 0;
    for (const [a, ns] of this.neighbours) {
      for (const b of ns) {
        const ga = group.get(a);
        const gb = group.get(b);
        if (ga === undefined || gb === undefined || ga === gb) continue;
        this.link(a, b)!.conditions.up = false;
        cut++;
      }
    }
    this.log(`network ${this.name}: partitioned into ${groups.map((g) => `[${g.join(', ')}]`).join(' | ')} (${cut / 2} links cut)`);
  }

  /** Brings every link up again (loss, delay and rate settings stay). */
  heal(): void {
    for (const out of this.links.values()) for (const l of out.values()) l.conditions.up = true;
    this.log(`network ${this.name}: healed (every link up)`);
  }

  private requireLink(a: string, b: string): void {
    if (!this.neighbours.get(a)?.has(b)) throw new ConfigurationError(`network ${this.name} has no link between ${a} and ${b} (members: ${this.members.join(', ')})`);
  }

  /** A frame from `from`'s NIC: captured, its sender learnt, then sent on to its destination or flooded to the neighbours. */
  forward(from: string, frame: Buffer): void {
    if (frame.length < 14) return;
    this.pcap.write(frame);
    const src = frame.toString('hex', 6, 12);
    if (this.macs.get(src) !== from) this.macs.set(src, from);
    const out = this.links.get(from);
    if (!out) return;
    const known = (frame[0]! & 1) === 1 ? undefined : this.macs.get(frame.toString('hex', 0, 6));
    if (known !== undefined) {
      const l = out.get(known);
      if (l) this.deliver(l, known, frame);
      return;
    }
    for (const [to, l] of out) this.deliver(l, to, frame);
  }

  private deliver(l: DirectedLink, to: string, frame: Buffer): void {
    const c = l.conditions;
    if (!c.up || (c.loss > 0 && Math.random() < c.loss)) {
      l.stats.dropped++;
      return;
    }
    l.stats.delivered++;
    const port = this.ports.get(to);
    if (!port) return;
    let wait = c.delayMs + (c.jitterMs ? Math.random() * c.jitterMs : 0);
    if (c.rateKbit > 0) {
      // The link is busy sending earlier frames until busyUntil; this one goes after them at the link's rate.
      const t = performance.now();
      const start = Math.max(t, l.busyUntil);
      l.busyUntil = start + (frame.length * 8) / c.rateKbit;
      wait += l.busyUntil - t;
    }
    if (c.reorder > 0 && Math.random() < c.reorder) {
      l.stats.reordered++;
      wait += REORDER_HOLD_MS;
    }
    const copies = c.duplicate > 0 && Math.random() < c.duplicate ? 2 : 1;
    if (copies === 2) l.stats.duplicated++;
    for (let k = 0; k < copies; k++) {
      if (wait <= 0) port.socket.send(frame, port.qemuPort, '127.0.0.1');
      else setTimeout(() => port.socket.send(frame, port.qemuPort, '127.0.0.1'), wait).unref();
    }
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
      } else {
        throw bad(`expected a list of members (a LAN) or { links: [[a, b], ...] } (a mesh), got ${JSON.stringify(spec)}`);
      }
    }
  }

  constructor(specs: Record<string, NetworkSpec>, opts: { pcapDir: string; onEvent?: (event: string) => void }) {
    this.onEvent = opts.onEvent ?? (() => undefined);
    Object.entries(specs).forEach(([name, spec], i) => {
      const links = Array.isArray(spec) ? undefined : spec.links;
      const members = Array.isArray(spec) ? [...spec] : [...new Set(spec.links.flat())];
      const net = new Network(name, members, links, subnet(i), `${opts.pcapDir}/${name}.pcap`, (e) => this.record(e));
      net.batman = !Array.isArray(spec) && !!spec.batman;
      this.networks.set(name, net);
    });
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

  /** Opens the switch ports of `machine` (one per network it is on) and says how QEMU and the guest join them. */
  async plan(scenario: string, machine: string): Promise<NicPlan[]> {
    const nics: NicPlan[] = [];
    for (const net of this.networks.values()) {
      if (!net.members.includes(machine)) continue;
      const socket = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, '127.0.0.1', () => resolve());
      });
      const qemuPort = await freeUdpPort();
      const port: Port = { machine, network: net, socket, qemuPort };
      socket.on('message', (frame) => net.forward(machine, frame));
      net.ports.set(machine, port);
      nics.push({ network: net.name, mac: stableMac(scenario, machine, net.name), address: net.address(machine), prefix: 24, switchPort: socket.address().port, qemuPort, batman: net.batman });
    }
    return nics;
  }

  /** Closes every port and flushes the captures. */
  async close(): Promise<void> {
    for (const net of this.networks.values()) {
      for (const p of net.ports.values()) p.socket.close();
      net.ports.clear();
      await net.pcap.close();
    }
  }
}

