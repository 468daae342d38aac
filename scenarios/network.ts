// Networks: three machines on a switched LAN of fleetlab's fabric. Everyone reaches everyone; a partition cuts
// exactly the paths across its groups; healing restores them; a one-way cut drops one direction only; a lossy link
// loses about what it was told to; a duplicating link delivers frames twice. Every change is in the case's log, every frame in lan.pcap. SSH reaches each
// machine through a restricted forward on 127.0.0.1 (ssh: true).
//   fleetlab run scenarios/network.ts
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need, scenario, type Machine } from 'fleetlab';

/** "a>b" for every ordered pair whose ping gets an answer. */
async function reachability(machines: Record<string, Machine>, network: string): Promise<string[]> {
  const names = Object.keys(machines);
  const ok: string[] = [];
  for (const a of names) {
    for (const b of names) {
      if (a === b) continue;
      const r = await machines[a]!.execute(`ping -c 1 -W 2 ${need(machines[b]!, 'net').address(network)}`);
      if (r.exitCode === 0) ok.push(`${a}>${b}`);
    }
  }
  return ok;
}

/** ICMP echo requests the machine has received so far (/proc/net/snmp). */
async function echoRequestsIn(m: Machine): Promise<number> {
  const snmp = await m.succeed('cat /proc/net/snmp');
  const [head, values] = snmp.split('\n').filter((l) => l.startsWith('Icmp:'));
  const i = head!.split(/\s+/).indexOf('InEchos');
  return Number(values!.split(/\s+/)[i]);
}

const ALL = ['a>b', 'a>c', 'b>a', 'b>c', 'c>a', 'c>b'];

export const lan = scenario({
  name: 'lan partition and faults',
  machines: { a: 'x86_64-direct', b: 'x86_64-direct', c: 'x86_64-direct' },
  networks: { lan: ['a', 'b', 'c'] },
  ssh: true,
  // Three machines of one shape: a boots, b and c restore its snapshot with their own MACs, addresses and SSH.
  snapshot: 'boot',
  timeout: 8 * 60_000,
  tags: ['network'],
  async run({ machines, step, net }) {
    const { a, b } = machines;
    await step('every machine has its address on lan', async () => {
      for (const m of Object.values(machines)) {
        const addrs = await m.succeed('ip -o -4 addr show');
        assert.match(addrs, new RegExp(`inet ${need(m, 'net').address('lan').replace(/\./g, '\\.')}/24`), `${m.name}: ${addrs}`);
        assert.match(await m.succeed('cat /sys/class/net/eth0/address'), new RegExp(need(m, 'net').mac('lan')));
      }
    });
    await step('everyone reaches everyone', async () => {
      await a.waitUntilSucceeds(`ping -c 1 -W 1 ${need(b, 'net').address('lan')}`, { timeout: 30_000 });
      assert.deepEqual(await reachability(machines, 'lan'), ALL);
    });
    await step('machines reach each other by name (/etc/hosts: <machine> and <machine>.<network>)', async () => {
      for (const [from, to, name] of [[a, b, 'b'], [b, machines.c!, 'c.lan'], [machines.c!, a, 'a']] as const) {
        const out = await from.succeed(`ping -c 1 -W 2 ${name}`);
        assert.match(out, new RegExp(`\\(${need(to, 'net').address('lan').replace(/\./g, '\\.')}\\)`), `${from.name} -> ${name}: ${out}`);
      }
    });
    await step('partition [a] | [b, c]: cut across, kept inside', async () => {
      net.partition(['a'], ['b', 'c']);
      assert.deepEqual(await reachability(machines, 'lan'), ['b>c', 'c>b']);
    });
    await step('heal: everyone again', async () => {
      net.heal();
      assert.deepEqual(await reachability(machines, 'lan'), ALL);
    });
    await step('one-way cut a -> b: b still reaches a, a never answers b', async () => {
      net.link('a', 'b').down({ oneWay: true });
      const before = await echoRequestsIn(a);
      assert.equal((await b.execute(`ping -c 3 -W 2 ${need(a, 'net').address('lan')}`)).exitCode, 1, 'b gets no answer from a');
      assert.ok((await echoRequestsIn(a)) >= before + 3, 'a received the requests b sent');
      assert.equal((await a.execute(`ping -c 1 -W 2 ${need(b, 'net').address('lan')}`)).exitCode, 1, 'a cannot reach b');
      assert.equal((await b.execute(`ping -c 1 -W 2 ${need(machines.c, 'net').address('lan')}`)).exitCode, 0, 'b still reaches c');
      net.link('a', 'b').up({ oneWay: true });
      assert.equal((await a.execute(`ping -c 1 -W 2 ${need(b, 'net').address('lan')}`)).exitCode, 0);
    });
    await step('30 % loss on a -> b loses about 30 % of the echoes', async () => {
      net.link('a', 'b').set({ loss: 0.3 }, { oneWay: true });
      const lanNet = net.network('lan');
      const before = lanNet.linkStats('a', 'b');
      const out = await a.execute(`ping -c 200 -i 0.02 -W 1 ${need(b, 'net').address('lan')}`, { timeout: 60_000 });
      const received = Number(/(\d+) packets received/.exec(out.stdout)?.[1]);
      const after = lanNet.linkStats('a', 'b');
      const dropped = after.dropped - before.dropped;
      const sent = dropped + after.delivered - before.delivered;
      // 200 echoes at p = 0.3: the drops stay within about 4.5 standard deviations of 60.
      assert.ok(received >= 200 * 0.7 - 30 && received <= 200 * 0.7 + 30, `received ${received} of 200`);
      assert.ok(dropped / sent > 0.2 && dropped / sent < 0.4, `the link dropped ${dropped} of ${sent} frames`);
      net.link('a', 'b').set({ loss: 0 }, { oneWay: true });
    });
    await step('duplication on b -> a: every echo reply arrives twice', async () => {
      net.link('a', 'b').set({ duplicate: 1 }, { oneWay: true });
      const out = await a.execute(`ping -c 20 -i 0.05 -W 1 ${need(b, 'net').address('lan')}`, { timeout: 30_000 });
      net.link('a', 'b').set({ duplicate: 0 }, { oneWay: true });
      // a -> b requests are doubled, so b answers each twice: busybox ping counts the second answers as duplicates.
      const dups = Number(/(\d+) duplicates/.exec(out.stdout)?.[1] ?? 0);
      assert.ok(dups >= 18, `ping saw ${dups} duplicates of 20: ${out.stdout.slice(-300)}`);
    });
    await step('SSH: exec with exit codes, upload, download and a forwarded port', async () => {
      const ssh = await a.ssh();
      const r = await ssh.execute('hostname; echo to-stderr >&2; exit 3');
      assert.deepEqual([r.exitCode, r.stdout, r.stderr], [3, 'a\n', 'to-stderr\n']);
      const dir = await mkdtemp(join(tmpdir(), 'fleetlab-ssh-'));
      const data = randomBytes(256 * 1024);
      await writeFile(join(dir, 'up.bin'), data);
      await ssh.upload(join(dir, 'up.bin'), '/tmp/up.bin');
      assert.equal((await ssh.succeed('sha256sum /tmp/up.bin')).split(' ')[0], createHash('sha256').update(data).digest('hex'));
      await ssh.download('/tmp/up.bin', join(dir, 'down.bin'));
      assert.ok((await readFile(join(dir, 'down.bin'))).equals(data), 'downloaded bytes equal uploaded bytes');
      // From a's SSH session, b across the LAN.
      await ssh.succeed(`ping -c 1 -W 2 ${need(b, 'net').address('lan')}`);
      await ssh.succeed('mkdir -p /tmp/www && echo fleetlab-page > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www');
      const fwd = await ssh.forward(8080);
      assert.equal((await (await fetch(`http://127.0.0.1:${fwd.port}/`)).text()).trim(), 'fleetlab-page');
      await fwd.close();
      ssh.close();
    });
    await step('every change is logged with its time; frames are captured', () => {
      const events = net.log.map((e) => e.event);
      assert.deepEqual(events, [
        'network lan: partitioned into [a] | [b, c] (2 links cut)',
        'network lan: healed (every link up)',
        'network lan: a -> b down',
        'network lan: a -> b up',
        'network lan: a -> b loss 30 %',
        'network lan: a -> b loss 0 %',
        'network lan: a -> b duplicate 100 %',
        'network lan: a -> b duplicate 0 %',
      ]);
      assert.ok(net.network('lan').pcap.frames > 100, `${net.network('lan').pcap.frames} frames captured`);
    });
  },
});
