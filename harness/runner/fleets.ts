// Fleets: a role with `count` is that many machines of one profile (machines: { node: { profile, count: 64 } } gives
// node0 … node63, each a machine with its own name, MACs, addresses and identity), and a network's `topology` is its
// links made from a list of machines (harness/net/topology.ts). Both are resolved when the scenario is loaded:
// everything after (plan, fabric, runner, reports) sees plain roles and links; the body gets `machines.node` as an
// array of the fleet's machines, in order.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { NetworkSpec } from '../net/fabric.ts';
import { isAbsolute, resolve } from 'node:path';
import { fileTopology, isTopology, topologyLinks, topologyPositions, type Members } from '../net/topology.ts';
import type { Machine } from '../protocols/machine.ts';
import type { ScenarioDefinition } from './scenario.ts';

/** The most machines one role may count: past it a typo, not a fleet (256 nodes fit this 24 GiB host; see docs). */
export const MAX_COUNT = 1024;

/**
 * Expands the scenario's counted roles and topologies (loadScenarioFile calls it); `where` names the file and scenario,
 * `dir` is its folder (fromFile()'s relative paths start there).
 */
export function expandFleets(s: ScenarioDefinition, where: string, dir = process.cwd()): ScenarioDefinition {
  const fleets: Record<string, string[]> = {};
  const machines: Record<string, unknown> = {};
  const declared = Object.keys(s.machines);
  for (const [role, r] of Object.entries(s.machines)) {
    const count = typeof r === 'object' && r !== null ? (r as { count?: unknown }).count : undefined;
    if (count === undefined) {
      machines[role] = r;
      continue;
    }
    const field = `machines.${role}.count`;
    if ('board' in (r as object)) throw new ConfigurationError(`${where}, ${field}: count makes VMs of one profile; a lab board is one board: give each board its role`, { details: { field } });
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_COUNT) throw new ConfigurationError(`${where}, ${field}: ${JSON.stringify(count)} is not a number of machines from 1 to ${MAX_COUNT}`, { details: { field, value: count } });
    const { count: _, ...request } = r as Record<string, unknown>;
    const single = Object.keys(request).length === 1 ? (request.profile as string) : request;
    fleets[role] = Array.from({ length: count }, (_, i) => `${role}${i}`);
    for (const name of fleets[role]) {
      if (declared.includes(name)) throw new ConfigurationError(`${where}, ${field}: the fleet's machine ${name} has the name of another role; rename one of them`, { details: { field } });
      machines[name] = single;
    }
  }
  if (!Object.keys(fleets).length && !Object.values(s.networks ?? {}).some((n) => isTopology((n as { topology?: unknown }).topology))) return s;
  const networks = s.networks && Object.fromEntries(Object.entries(s.networks).map(([name, spec]) => [name, resolveNetwork(spec as Declared, fleets, `${where}, networks.${name}`, { dir, machines: Object.keys(machines) })]));
  return { ...s, machines: machines as ScenarioDefinition['machines'], networks, fleets };
}

/** A network as a scenario may declare it: NetworkSpec, or with a topology in place of its links. */
type Declared = NetworkSpec | { topology: unknown; links?: unknown; batman?: unknown };

function resolveNetwork(spec: Declared, fleets: Record<string, string[]>, where: string, ctx: { dir: string; machines: string[] }): NetworkSpec {
  const members = (m: Members): string[] => (typeof m === 'string' ? (fleets[m] ?? [m]) : m.flatMap((x) => fleets[x] ?? [x]));
  if (Array.isArray(spec)) return members(spec);
  const { topology, ...rest } = spec as { topology?: unknown; links?: Array<[string, string]>; batman?: unknown };
  if (topology === undefined) {
    for (const link of rest.links ?? []) {
      const fleet = Array.isArray(link) ? link.find((x) => fleets[x]) : undefined;
      if (fleet) throw new ConfigurationError(`${where}: link ${JSON.stringify(link)} names the fleet ${fleet} (${fleets[fleet]!.length} machines): name its members (${fleets[fleet]![0]} …) or give the network a topology: ring('${fleet}'), line('${fleet}') or grid('${fleet}', width)`, { details: { network: where } });
    }
    return spec as NetworkSpec;
  }
  if (rest.links !== undefined) throw new ConfigurationError(`${where}: has both links and a topology; give one`, { details: { network: where } });
  if (!isTopology(topology)) throw new ConfigurationError(`${where}: topology is not one fleetlab makes: use line(members), ring(members), grid(members, width), randomGeometric(members, { radius, seed }) or fromFile(path, { members? }) from 'fleetlab'`, { details: { network: where } });
  try {
    if (topology.kind === 'file') {
      const t = { ...topology, path: isAbsolute(topology.path) ? topology.path : resolve(ctx.dir, topology.path) };
      const f = fileTopology(t, topology.members === undefined ? undefined : members(topology.members));
      const strangers = f.names.filter((n) => !ctx.machines.includes(n));
      if (strangers.length) throw new Error(`fromFile(${t.path}) names ${strangers.slice(0, 3).join(', ')}${strangers.length > 3 ? ` and ${strangers.length - 3} more` : ''}, which are no machines of this scenario: give fromFile(path, { members: 'node' }) to put the file's ${f.names.length} nodes on a fleet's machines, in order`);
      return { ...(rest as object), links: f.links, positions: f.positions } as NetworkSpec;
    }
    const names = members(topology.members);
    return { ...(rest as object), links: topologyLinks(topology, names), positions: topologyPositions(topology, names) } as NetworkSpec;
  } catch (err) {
    throw new ConfigurationError(`${where}: ${(err as Error).message}`, { details: { network: where } });
  }
}

/** Machine names for a step's name: a whole fleet as "node0 … node63", other machines by name. */
export function machineNames(names: string[], fleets: Record<string, string[]> | undefined): string {
  const out: string[] = [];
  const done = new Set<string>();
  for (const name of names) {
    const fleet = Object.values(fleets ?? {}).find((members) => members.length > 2 && members.includes(name));
    if (!fleet) out.push(name);
    else if (!done.has(fleet[0]!) && fleet.every((m) => names.includes(m))) {
      done.add(fleet[0]!);
      out.push(`${fleet[0]} … ${fleet.at(-1)}`);
    } else if (!fleet.every((m) => names.includes(m))) out.push(name);
  }
  return out.join(', ');
}

/** The machines as a scenario body gets them: each fleet's role an array of its machines, other roles as they are. */
export function bodyMachines(machines: Record<string, Machine>, fleets: Record<string, string[]> | undefined): Record<string, Machine | Machine[]> {
  if (!fleets) return machines;
  const member = new Map(Object.entries(fleets).flatMap(([role, names]) => names.map((n) => [n, role] as const)));
  const out: Record<string, Machine | Machine[]> = {};
  for (const [name, m] of Object.entries(machines)) {
    const role = member.get(name);
    if (role) ((out[role] ??= []) as Machine[]).push(m);
    else out[name] = m;
  }
  return out;
}
