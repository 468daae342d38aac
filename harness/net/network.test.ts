// Networks through the real CLI: scenarios/network.ts on three real guests (reachability matrices, partition and
// heal, one-way cut, loss), the capture read back by tcpdump, the changes in JUnit; bad declarations fail before boot.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { processesMatching } from '../testing/processes.ts';

const root = join(import.meta.dirname, '../..');
const fleetlab = (args: string[]) => execa(process.execPath, [join(root, 'harness/cli/main.ts'), ...args], { cwd: root, reject: false, timeout: 480_000, env: { CI: '1', NO_COLOR: '1' } });

describe('networks', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof fleetlab>>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-net-'));
    run = await fleetlab(['run', 'scenarios/network.ts', '--output', dir]);
  }, 500_000);

  it('scenarios/network.ts passes: LAN reachability, partition and heal, one-way cut, loss', () => {
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
  });

  it('writes lan.pcap, which tcpdump reads, with the ICMP and ARP the scenario caused', async () => {
    const xml = await readFile(join(dir, 'junit.xml'), 'utf8');
    const pcap = /\[\[ATTACHMENT\|([^\]]+lan\.pcap)\]\]/.exec(xml)?.[1];
    expect(pcap).toBeTruthy();
    const icmp = await execa('tcpdump', ['-nn', '-r', pcap!, 'icmp'], { reject: false });
    expect(icmp.exitCode, icmp.stderr).toBe(0);
    expect(icmp.stdout.split('\n').filter((l) => /ICMP echo request/.test(l)).length).toBeGreaterThan(150);
    expect((await execa('tcpdump', ['-nn', '-r', pcap!, 'arp'])).stdout).toMatch(/ARP, Request who-has 198\.18\.0\.\d+ tell 198\.18\.0\.\d+/);
  });

  it('JUnit carries every network change with its time', async () => {
    const xml = new XMLParser({ ignoreAttributes: false }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
    const out = String(xml.testsuites.testsuite.testcase['system-out']);
    expect(out).toMatch(/\[\d{4}-\d\d-\d\dT[\d:.]+Z\] network lan: partitioned into \[a\] \| \[b, c\] \(2 links cut\)/);
    expect(out).toMatch(/network lan: a -> b loss 30 %/);
  });

  it('leaves no QEMU behind', () => {
    for (const m of ['a', 'b', 'c']) expect(processesMatching(`process=fleetlab-${m},`).filter(([, c]) => c.includes(dir))).toEqual([]);
  });

  it('Arm machines on a LAN: ping, SSH and batctl on the aarch64 testbed, the second machine restored warm', async () => {
    const r = await fleetlab(['run', 'harness/net/fixtures/arm-lan.ts', '--output', join(dir, 'arm')]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/a: tcg, cold [\d.]+ s, b: tcg, warm [\d.]+ s/);
  }, 300_000);

  it("a mesh network's own OGM interval: set on its nodes (a restored one too), another mesh keeps 250 ms", async () => {
    const r = await fleetlab(['run', 'harness/net/fixtures/ogm-interval.ts', '--output', join(dir, 'ogm')]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/b: tcg, warm/);
  }, 300_000);

  it('bad declarations are configuration errors before anything boots', async () => {
    const cases: Array<[string, RegExp]> = [
      ['bad-member.ts', /network lan: member "ghost" is not a machine of this scenario \(machines: a\)/],
      ['bad-link.ts', /network mesh: link \[b, ghost\]: "ghost" is not a machine of this scenario/],
      ['link-twice.ts', /network mesh: link \[b, a\] is declared twice/],
      ['ogm-mixed.ts', /machine a is on batman-adv networks north \(OGM every 1000 ms\) and south \(250 ms\), but a machine has one mesh interface \(bat0\)/],
      ['bad-positions.ts', /network mesh: positions: "c" is not on this network/],
      ['bad-radio.ts', /network mesh: radio: places its members by distance, but a, b have no position: give the network a topology/],
      ['bad-ogm.ts', /network mesh: batman.origIntervalMs: 10 is not a whole number of milliseconds from 50 to 60000/],
      ['bad-window.ts', /network mesh: broadcastWindowMs: 5000 is not a whole number of milliseconds from 1 to 1000/],
      ['pi-on-lan.ts', /scenario "pi on a lan", machine pi \(profile raspi3b\) is on network lan, but QEMU's Raspberry Pi model \(raspi3b\) has no NIC fleetlab can attach/],
    ];
    for (const [file, message] of cases) {
      const r = await fleetlab(['run', `harness/net/fixtures/${file}`, '--output', join(dir, file)]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const addr = await fleetlab(['run', 'harness/net/fixtures/no-network.ts', '--output', join(dir, 'addr')]);
    expect(addr.exitCode).toBe(2);
    expect(addr.stdout).toMatch(/machine a is not on network "lan" \(it is on no network\); declare it in the scenario's networks/);
  }, 120_000);
});
