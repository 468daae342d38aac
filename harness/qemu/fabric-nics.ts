// A VM's NICs on the scenario's networks (fleetlab's fabric): its address and MAC on each, and the batman-adv mesh
// helpers for the one batman network it is on. The `net` capability of a QemuMachine.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { BatmanMesh } from '../net/batman-mesh.ts';
import type { NicPlan } from '../net/fabric.ts';
import { need, type FabricNet, type Machine } from '../protocols/machine.ts';
import type { Shell } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';

export class FabricNics implements FabricNet {
  private readonly name: string;
  private readonly nics: NicPlan[];
  private readonly shell: Shell;

  constructor(name: string, nics: NicPlan[], shell: Shell) {
    this.name = name;
    this.nics = nics;
    this.shell = shell;
  }

  /** This machine's address on `network` (a network of the scenario it is on). */
  address(network: string): string {
    const nic = this.nics.find((n) => n.network === network);
    if (!nic) {
      const on = this.nics.map((n) => n.network);
      throw new ConfigurationError(`machine ${this.name} is not on network "${network}" (${on.length ? `it is on: ${on.join(', ')}` : 'it is on no network'}); declare it in the scenario's networks.`);
    }
    return nic.address;
  }

  /** The MAC of this machine's NIC on `network` (stable per scenario, machine and network): how a guest finds that NIC. */
  mac(network: string): string {
    this.address(network);
    return this.nics.find((n) => n.network === network)!.mac;
  }

  /** batman-adv helpers for this machine's mesh (bat0): originators, neighbours, next hops, routes. */
  get mesh(): BatmanMesh {
    return new BatmanMesh(this.shell);
  }

  /** Waits until this machine's mesh has a route to `dest` (a machine on the same batman network, or an originator MAC). */
  waitForMeshRoute(dest: Machine | string, opts?: WaitOptions & { network?: string }): Promise<string> {
    const mac = typeof dest === 'string' ? dest : need(dest, 'net', `waitForMeshRoute(${dest.name})`).mac(opts?.network ?? this.meshNetwork());
    return this.mesh.waitForRoute(mac, opts);
  }

  /** The one batman network this machine is on. */
  meshNetwork(): string {
    const meshes = this.nics.filter((n) => n.batman);
    if (meshes.length !== 1) throw new ConfigurationError(`machine ${this.name} is on ${meshes.length} batman networks (${meshes.map((n) => n.network).join(', ') || 'none'}); name one`);
    return meshes[0]!.network;
  }
}

/**
 * The "MAC ADDRESS/PREFIX [batman OGM-INTERVAL-MS]" lines the testbed reads through QEMU's fw_cfg (opt/fleetlab/net) to configure each
 * NIC it finds by MAC, then "host ADDRESS NAME..." lines for its /etc/hosts: every machine of the scenario as
 * `<machine>.<network>` on each network, and by its bare name at its address on the first network the two share, or
 * for a machine it shares none with, on that machine's first network (NTD names every node so: a client behind a
 * router resolves the server on the far side), written to `runDir`/net.conf; undefined when there is no NIC to configure.
 */
export async function writeNetConfig(runDir: string, nics: NicPlan[], hostLink: { mac: string } | undefined): Promise<string | undefined> {
  const lines = nics.map((n) => `${n.mac} ${n.address}/${n.prefix}${n.batman ? ` batman ${n.batman.origIntervalMs}` : ''}\n`);
  // QEMU's user networking is 10.0.2.0/24 inside QEMU only; with restrict=on nothing gets out of it.
  if (hostLink) lines.push(`${hostLink.mac} 10.0.2.15/24\n`);
  const names = new Map<string, string[]>();
  const named = new Set<string>();
  const name = (p: { name: string; address: string }, network: string) => {
    const at = names.get(p.address) ?? [];
    if (!named.has(p.name)) at.push(p.name), named.add(p.name);
    at.push(`${p.name}.${network}`);
    names.set(p.address, at);
  };
  for (const n of nics) for (const p of n.peers) name(p, n.network);
  for (const p of nics[0]?.others ?? []) name(p, p.network);
  for (const [address, ns] of names) lines.push(`host ${address} ${ns.join(' ')}\n`);
  if (!lines.length) return undefined;
  const file = join(runDir, 'net.conf');
  await writeFile(file, lines.join(''));
  return file;
}
