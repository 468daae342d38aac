// What a scenario holds of its networks (ctx.net): partitions and heals across every network, one link's faults,
// and each network's capture and counters.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { hostProcessOf, type HostProcess } from '../process/usage.ts';
import type { Machine } from '../protocols/machine.ts';
import { waitConverged, type ConvergeOptions, type Converged } from './converge.ts';
import type { Fabric, LinkConditions, Network } from './fabric.ts';

/** One link between two machines: cut it (both ways or one), make it lossy, slow or narrow. */
export interface LinkHandle {
  down(opts?: { oneWay?: boolean }): void;
  up(opts?: { oneWay?: boolean }): void;
  set(conditions: Partial<Omit<LinkConditions, 'up'>>, opts?: { oneWay?: boolean }): void;
}

/** ctx.net: the scenario's networks. */
export interface FabricHandle {
  /** Cuts every path between the groups on every network (paths inside a group stay). */
  partition(...groups: string[][]): void;
  /** Every link of every network up again. */
  heal(): void;
  /** The link between `a` and `b` (`a -> b` for one-way changes), on `network` or the one network that has it. */
  link(a: string, b: string, network?: string): LinkHandle;
  /** One network: its members, addresses, capture (pcap.path) and per-link counters. */
  network(name: string): Network;
  /** Every change made so far, with its time. */
  readonly log: Array<{ at: string; event: string }>;
  /**
   * Moves `machine` to (x, y) on every network with a radio model it is on: its links come up, go down and change
   * their loss and delay with the new distances (radio.ts).
   */
  move(machine: string, x: number, y: number): void;
  /** The switch every network's frames go through (fleetlab-switch): its pid, CPU time and memory. */
  readonly switchProcess: HostProcess;
  /**
   * Waits until every batman-adv network (or `network`) converged: each member routes to every member it can reach
   * over the links up (its island while partitioned); `exact` also waits until none routes to one it cannot reach.
   */
  waitConverged(opts?: ConvergeOptions): Promise<Converged>;
}

/** The handle over a case's fabric (or over none, when the scenario declares no network). */
export function fabricHandle(fabric: Fabric | undefined, machines: () => Record<string, Machine> = () => ({})): FabricHandle {
  const none = () => new ConfigurationError('this scenario declares no networks; add networks: { lan: [...] } to it');
  const nets = () => {
    if (!fabric) throw none();
    return [...fabric.networks.values()];
  };
  return {
    partition: (...groups) => {
      for (const n of nets()) {
        const inNet = groups.map((g) => g.filter((m) => n.members.includes(m))).filter((g) => g.length);
        if (inNet.length > 1) n.partition(inNet);
      }
    },
    heal: () => nets().forEach((n) => n.heal()),
    link: (a, b, network) => {
      const candidates = network ? [fabricNetwork(fabric, network)] : nets().filter((n) => n.members.includes(a) && n.members.includes(b));
      if (candidates.length !== 1) {
        throw new ConfigurationError(candidates.length ? `machines ${a} and ${b} share ${candidates.length} networks (${candidates.map((n) => n.name).join(', ')}); name one: net.link('${a}', '${b}', '${candidates[0]!.name}')` : `no network of this scenario joins ${a} and ${b}`);
      }
      const n = candidates[0]!;
      return {
        down: (opts) => n.setLink(a, b, { up: false }, opts),
        up: (opts) => n.setLink(a, b, { up: true }, opts),
        set: (conditions, opts) => n.setLink(a, b, conditions, opts),
      };
    },
    network: (name) => fabricNetwork(fabric, name),
    get log() {
      return fabric ? fabric.log : [];
    },
    move: (machine, x, y) => {
      const radios = nets().filter((n) => n.radio && n.members.includes(machine));
      if (!radios.length) throw new ConfigurationError(`net.move(${machine}): it is on no network with a radio model (networks: { mesh: { topology, radio: { range } } })`);
      for (const n of radios) n.move(machine, x, y);
    },
    switchProcess: hostProcessOf(() => fabric?.switchPid),
    waitConverged: (opts) => waitConverged(fabric, machines(), opts),
  };
}

function fabricNetwork(fabric: Fabric | undefined, name: string): Network {
  if (!fabric) throw new ConfigurationError(`this scenario declares no networks (asked for "${name}")`);
  return fabric.network(name);
}
