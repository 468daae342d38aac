// The network file the guest reads through fw_cfg (opt/fleetlab/net): its NICs, and the names its /etc/hosts gets.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NicPlan } from '../net/fabric.ts';
import { writeNetConfig } from './fabric-nics.ts';

const nic = (network: string, mac: string, address: string, peers: Array<[string, string]>, others: Array<[string, string, string]>): NicPlan => ({
  network, mac, address, prefix: 24, switchPort: 1, qemuPort: 2,
  peers: peers.map(([name, a]) => ({ name, address: a })),
  others: others.map(([name, net, a]) => ({ name, network: net, address: a })),
});

describe('writeNetConfig', () => {
  it("names every machine: by the first network shared, and one on no shared network by its own first (nat.nix's client resolves the server behind the router)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-netconf-'));
    // client on inside only; router on inside and outside; server on outside only.
    const others: Array<[string, string, string]> = [['router', 'outside', '198.18.1.10'], ['server', 'outside', '198.18.1.11']];
    const file = await writeNetConfig(dir, [nic('inside', '52:54:00:00:00:01', '198.18.0.10', [['client', '198.18.0.10'], ['router', '198.18.0.11']], others)], undefined);
    expect(await readFile(file!, 'utf8')).toBe(
      '52:54:00:00:00:01 198.18.0.10/24\n' +
        'host 198.18.0.10 client client.inside\n' +
        'host 198.18.0.11 router router.inside\n' +
        'host 198.18.1.10 router.outside\n' +
        'host 198.18.1.11 server server.outside\n',
    );
  });

  it('a NIC on a batman-adv mesh: the word batman and the network\'s OGM interval', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-netconf-'));
    const file = await writeNetConfig(dir, [{ ...nic('mesh', '52:54:00:00:00:02', '198.18.0.12', [], []), batman: { origIntervalMs: 1000 } }], undefined);
    expect(await readFile(file!, 'utf8')).toBe('52:54:00:00:00:02 198.18.0.12/24 batman 1000\n');
  });

  it('has nothing to write for a machine without NICs', async () => {
    expect(await writeNetConfig(await mkdtemp(join(tmpdir(), 'fleetlab-netconf-')), [], undefined)).toBeUndefined();
  });
});
