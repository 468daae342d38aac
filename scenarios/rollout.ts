// A fleet rollout in waves (1, 50 %, 100 %): a good generation reaches all four machines; a bad one fails its health
// check on the canary, the rollout halts there and the canary alone is rolled back, the rest never touched. The
// fleet starts warm: the canary boots and the others restore its snapshot, each with its own name and machine-id.
//   fleetlab run scenarios/rollout.ts
import assert from 'node:assert/strict';
import { rollout, scenario } from 'fleetlab';

export const fleetRollout = scenario({
  name: 'rollout in waves',
  machines: { canary: 'x86_64-bios', b: 'x86_64-bios', c: 'x86_64-bios', d: 'x86_64-bios' },
  // Four machines of one shape: one boots, the other three restore its snapshot.
  snapshot: 'boot',
  timeout: 15 * 60_000,
  tags: ['nixos'],
  async run({ machines, step, property }) {
    const fleet = [machines.canary, machines.b, machines.c, machines.d];
    await step('four machines, four names and machine-ids (restored ones included)', async () => {
      const ids = new Set<string>();
      for (const m of fleet) {
        const [host, id] = (await m.succeed('hostname; cat /etc/machine-id')).trim().split('\n');
        assert.equal(host, m.name);
        ids.add(id!);
      }
      assert.equal(ids.size, fleet.length);
    });
    const healthCheck = async (m: (typeof fleet)[number]) => (await m.nixos.failedUnits()).length === 0;
    const good = await machines.canary.nixos.testbedGeneration({ version: '26.05.2-good', services: [{ name: 'app', command: 'echo v2 > /run/app' }] });
    const bad = await machines.canary.nixos.testbedGeneration({ version: '26.05.3-bad', services: [{ name: 'app', command: 'echo v3 cannot start >&2; exit 1' }] });

    const first = await step('a good generation goes out in waves 1, 50 %, 100 %', () => rollout(fleet, good, { waves: [1, '50%', '100%'], healthCheck, step }));
    assert.equal(first.completed, true);
    assert.deepEqual(first.waves, [['canary'], ['b'], ['c', 'd']]);
    for (const m of fleet) assert.equal((await m.nixos.current()).generation, 2, `${m.name} is on generation 2`);

    const second = await step('a bad generation halts after the canary, which alone is rolled back', () => rollout(fleet, bad, { waves: [1, '50%', '100%'], healthCheck, step }));
    assert.equal(second.completed, false);
    assert.deepEqual(second.haltedAt, { wave: 0, unhealthy: ['canary'] });
    assert.deepEqual(second.rolledBack, ['canary']);
    assert.deepEqual(second.updated, ['canary']);
    property('rollout.halted.wave', second.haltedAt!.wave + 1);
    await step('every machine runs generation 2, healthy', async () => {
      for (const m of fleet) {
        assert.equal((await m.nixos.current()).generation, 2, `${m.name}: profile on generation 2`);
        assert.equal((await m.succeed('readlink -f /run/current-system')).trim(), good.path);
        assert.deepEqual(await m.nixos.failedUnits(), []);
      }
    });
  },
});
