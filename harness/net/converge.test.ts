// net.waitConverged()'s refusals, before it reads anything: a scenario with no batman-adv network, a network name
// that is none. (Its waits run on guests: scenarios/mesh-partition.ts and scenarios/fleet-mesh.ts.)
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
