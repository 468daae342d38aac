// net.waitConverged()'s refusals, before it reads anything: a scenario with no batman-adv network, a network name
// that is none; the translation table it reads, parsed from batctl's output. (Its waits run on guests:
// scenarios/mesh-partition.ts, scenarios/fleet-mesh.ts, harness/net/fixtures/ogm-interval.ts.)
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTranslations } from './batman-mesh.ts';
import { waitConverged } from './converge.ts';
import { Fabric } from './fabric.ts';

describe('net.waitConverged()', () => {
  it('says what is missing when there is no batman-adv network to wait for', async () => {
    await expect(waitConverged(undefined, {})).rejects.toThrow("net.waitConverged(): this scenario has no batman-adv network (networks: { mesh: { links | topology, batman: true } })");
    const fabric = new Fabric({ lan: ['a', 'b'], mesh: { links: [['a', 'b']], batman: true } }, { pcapDir: await mkdtemp(join(tmpdir(), 'fleetlab-converge-')) });
    await expect(waitConverged(fabric, {}, { network: 'lan' })).rejects.toThrow("net.waitConverged({ network: 'lan' }): no batman-adv network of this scenario is called so (batman-adv networks: mesh)");
    await fabric.close();
  });
});

describe("batman-adv's global translation table", () => {
  it('reads the client, VLAN, originator and the entry in use from batctl transglobal (batctl 2023.0, batman-adv 2022.3)', () => {
    const out = [
      '[B.A.T.M.A.N. adv 2022.3, MainIF/MAC: eth0/52:54:d5:24:b4:98 (bat0/92:17:e8:a1:15:2e BATMAN_IV)]',
      '   Client             VID Flags Last ttvn     Via        ttvn  (CRC       )',
      ' * aa:c3:57:d4:b3:30   -1 [....] (  1) 52:54:4e:83:69:6f (  1) (0xdf845c84)',
      '   01:00:5e:00:00:01   -1 [....] (  1) 52:54:4e:83:69:6f (  1) (0xdf845c84)',
      ' * 33:33:00:00:00:01   12 [.W..] ( 14) 52:54:0b:c2:97:65 ( 14) (0xf8c9494f)',
    ].join('\n');
    expect(parseTranslations(out)).toEqual([
      { best: true, client: 'aa:c3:57:d4:b3:30', vid: -1, originator: '52:54:4e:83:69:6f' },
      { best: false, client: '01:00:5e:00:00:01', vid: -1, originator: '52:54:4e:83:69:6f' },
      { best: true, client: '33:33:00:00:00:01', vid: 12, originator: '52:54:0b:c2:97:65' },
    ]);
  });
});
