// A lab that spans hosts, with real parts: a second lab host played by this machine (Debian's sshd on a loopback port
// with a user of its own, Debian's ser2net exporting the virtual boards' serial lines as RFC 2217 ports:
// lab/virtual/remote-host.ts). Smoke passes on its boards and JUnit names the host; ser2net restarted mid-case ends
// the case as an infrastructure error naming the line and the host; the host's SSH connection, dropped, is an error
// naming the host and is used again once the host is back; a wrong pinned host key is refused; the RFC 2217 line is
// set and acknowledged by ser2net.
import { execa } from 'execa';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { InfrastructureError } from '../harness/errors/fleetlab-error.ts';
import { writeImageOnHost } from './drivers/remote-writer.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSupervised } from '../harness/process/supervisor.ts';
import { freeTcpPort } from '../harness/net/free-port.ts';
import { labSchema } from './inventory.ts';
import { LabHost } from './lab-host.ts';
import { openRfc2217 } from './rfc2217.ts';
import { startRemoteHost } from './virtual/remote-host.ts';
import { OutputWatch } from '../harness/testing/stream-wait.ts';

const root = join(import.meta.dirname, '..');

/** The pids below `ppid`: its children, theirs, and so on (an sshd's connections and what runs in them). */
function descendantsOf(ppid: number): number[] {
  const kids = childrenOf(ppid);
  return [...kids, ...kids.flatMap(descendantsOf)];
}

/** The pids whose parent is `ppid`. */
function childrenOf(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid;
      } catch {
        return false;
      }
    })
    .map(Number);
}
const cli = join(root, 'harness/cli/main.ts');

describe('a lab across hosts', () => {
  it('smoke passes on a board of a lab host reached through ser2net (RFC 2217) and SSH, and a card flashed on the host boots; JUnit names the host', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-rlab-'));
    const out = join(dir, 'out');
    const r = await execa(process.execPath, [cli, 'run', 'scenarios/smoke.ts', 'lab/fixtures/board-scenarios.ts', '--grep', '^(smoke|a card flashed)', '--workers', '2', '--lab', 'lab/example-remote.ts', '--lab-db', join(dir, 'lab.sqlite'), '--machine', 'tag:remote', '--output', out, '--history', 'none'], { cwd: root, reject: false, timeout: 400_000, env: { CI: 'true', NO_COLOR: '1', FLEETLAB_RLAB_DIR: join(dir, 'rlab') } });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const junit = await readFile(join(out, 'junit.xml'), 'utf8');
    expect(junit).toMatch(/name="machine\.board\.host" value="lab host shelf1 \((fleetlab-lab|\w+)@127\.0\.0\.1:\d+\)"/);
    expect(junit).toMatch(/name="machine\.board\.serial" value="rfc2217:127\.0\.0\.1:\d+"/);
    expect(junit).toMatch(/name="machine\.board\.power" value="command [^"]* on shelf1"/);
    expect(r.stdout).toMatch(/✓ the flashed system booted/);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const flashed = report.results.find((c: { scenario: string }) => c.scenario === 'a card flashed through the mux boots');
    const log = await readFile(flashed.attempts[0].machines[0].logPath, 'utf8');
    expect(log).toMatch(/SD mux usbsdmux \S+ on shelf1: host/);
    expect(log).toMatch(/wrote \S+ to \S+: \d+ bytes in \d+ ranges?.*, read back and verified/);
  }, 420_000);

  it('ser2net restarted mid-case ends the case as an infrastructure error naming the line and the host', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-rlab-'));
    const out = join(dir, 'out');
    const run = execa(process.execPath, [cli, 'run', 'lab/fixtures/remote-faults.ts', '--lab', 'lab/example-remote.ts', '--lab-db', join(dir, 'lab.sqlite'), '--machine', 'tag:remote', '--output', out, '--history', 'none'], { cwd: root, reject: false, timeout: 400_000, env: { CI: 'true', NO_COLOR: '1', FLEETLAB_RLAB_DIR: join(dir, 'rlab') } });
    const said = new OutputWatch(run.stdout!);
    await said.until(/✓ start main/, 300_000);
    await new Promise((r) => setTimeout(r, 2000));
    const pid = Number((await readFile(join(dir, 'rlab', 'host', 'ser2net.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGTERM');
    const r = await run;
    expect(r.exitCode, r.stdout + r.stderr).toBe(3);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const err = report.results[0].attempts.at(-1).error;
    expect(err.kind).toBe('infrastructure');
    expect(err.message).toMatch(/its serial line rfc2217:127\.0\.0\.1:\d+ \(exported by lab host shelf1 \(\S+@127\.0\.0\.1:\d+\)\) closed/);
  }, 420_000);

  it('a lab host: commands over its SSH connection; sshd gone is an error naming the host; back, it is used again; a wrong host key is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-host-'));
    const port = await freeTcpPort();
    const host = await startRemoteHost({ dir, sshPort: port, exports: [] });
    try {
      const spec = labSchema.parse({ name: 'l', hosts: { shelf1: { ssh: `${host.user}@127.0.0.1`, port, privateKey: host.privateKey, hostKey: host.hostKey } }, boards: {} }).hosts.shelf1!;
      const h = new LabHost('shelf1', spec);
      expect((await h.exec('id -un', { timeoutMs: 10_000, what: 'who' })).stdout.trim()).toBe(host.user);
      // The host goes away: its sshd and every connection it serves (each a child of it) end.
      for (const pid of descendantsOf(host.sshd.pid!)) process.kill(pid, 'SIGKILL');
      await host.sshd.stop();
      // The connection is gone with the server: the next command says which host it could not reach.
      await expect(h.exec('true', { timeoutMs: 5000, what: 'power of rboard-1: usbrelay X_1=1' })).rejects.toThrow(/lab host shelf1 \(\S+@127\.0\.0\.1:\d+\): power of rboard-1: usbrelay X_1=1: /);
      // The host comes back: the same LabHost connects again by itself.
      const again = spawnSupervised('sshd again', '/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')]);
      try {
        await expect.poll(async () => (await h.exec('echo back', { timeoutMs: 5000, what: 'probe' }).catch(() => ({ stdout: '' }))).stdout.trim(), { timeout: 20_000, interval: 500 }).toBe('back');
        const wrong = new LabHost('shelf1', { ...spec, hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIUzW0Gq3o7wGd3m1T7Hnqz1M3B5yM2bD0b0VdXoJk3E' });
        await expect(wrong.exec('true', { timeoutMs: 5000, what: 'probe' })).rejects.toThrow(/The SSH host key of lab host shelf1 .* changed/);
        h.close();
      } finally {
        await again.stop();
      }
    } finally {
      await host.close();
    }
  }, 60_000);

  it('a card written on a lab host over SSH: only what the bmap maps, read back there; the connection killed mid-write is an error naming the host', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-rwrite-'));
    const image = join(dir, 'card.img');
    const target = join(dir, 'card.dev');
    // A 1 MiB image whose bmap maps blocks 0-3 and 128-131 (4 KiB blocks), with their sha256.
    const img = Buffer.alloc(1 << 20, 0x5a);
    await writeFile(image, img);
    const sha = (a: number, b: number) => createHash('sha256').update(img.subarray(a * 4096, (b + 1) * 4096)).digest('hex');
    await writeFile(`${image}.bmap`, `<?xml version="1.0" ?>\n<bmap version="2.0"><ImageSize>${1 << 20}</ImageSize><BlockSize>4096</BlockSize><BlocksCount>256</BlocksCount><MappedBlocksCount>8</MappedBlocksCount><ChecksumType>sha256</ChecksumType><BlockMap><Range chksum="${sha(0, 3)}">0-3</Range><Range chksum="${sha(128, 131)}">128-131</Range></BlockMap></bmap>\n`);
    // The card holds 0x11 everywhere before: what the bmap does not map stays so.
    await writeFile(target, Buffer.alloc(1 << 20, 0x11));
    const port = await freeTcpPort();
    const host = await startRemoteHost({ dir: join(dir, 'host'), sshPort: port, exports: [], share: [target] });
    try {
      const h = new LabHost('shelf1', labSchema.parse({ name: 'l', hosts: { shelf1: { ssh: `${host.user}@127.0.0.1`, port, privateKey: host.privateKey } }, boards: {} }).hosts.shelf1!);
      const report = await writeImageOnHost(image, target, h, 'rboard-1');
      expect(report).toEqual({ bytesWritten: 8 * 4096, ranges: 2, bmap: true });
      const card = await readFile(target);
      expect(card.subarray(0, 4 * 4096).every((b) => b === 0x5a)).toBe(true);
      expect(card.subarray(4 * 4096, 128 * 4096).every((b) => b === 0x11)).toBe(true);
      expect(card.subarray(128 * 4096, 132 * 4096).every((b) => b === 0x5a)).toBe(true);

      // A big image with no bmap; the host's connection is killed while it is written.
      const big = join(dir, 'big.img');
      await writeFile(big, randomBytes(256 << 20));
      const writing = writeImageOnHost(big, target, h, 'rboard-1');
      // Killed once dd on the host has written 16 MiB of it.
      await expect.poll(async () => (await stat(target)).size, { timeout: 20_000, interval: 20 }).toBeGreaterThan(16 << 20);
      for (const pid of descendantsOf(host.sshd.pid!)) process.kill(pid, 'SIGKILL');
      const err = await writing.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InfrastructureError);
      expect((err as Error).message).toMatch(/^lab host shelf1 \(\S+@127\.0\.0\.1:\d+\): writing \S+big\.img to \S+card\.dev for board rboard-1 \(bytes 0-268435456\): /);
      h.close();
    } finally {
      await host.close();
    }
  }, 120_000);

  it("RFC 2217 through ser2net: the line's settings acknowledged, bytes (0xFF too) passed through", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-2217-'));
    const pty = join(dir, 'pty');
    const received = join(dir, 'received');
    const socat = spawnSupervised('socat pty', 'socat', [`PTY,link=${pty},raw,echo=0`, `SYSTEM:cat > ${received}`]);
    try {
      await expect.poll(async () => (await execa('test', ['-e', pty], { reject: false })).exitCode, { timeout: 5000 }).toBe(0);
      const port = await freeTcpPort();
      const host = await startRemoteHost({ dir: join(dir, 'host'), sshPort: await freeTcpPort(), exports: [{ device: pty, port }] });
      try {
        const s = await openRfc2217(`127.0.0.1:${port}`, 57600, 5000);
        expect(s.acked.get(1)).toBe(57600);
        s.write(Buffer.from([0x68, 0x69, 0xff, 0x00, 0x0a]));
        await expect.poll(async () => [...(await readFile(received).catch(() => Buffer.alloc(0)))], { timeout: 5000 }).toEqual([0x68, 0x69, 0xff, 0x00, 0x0a]);
        s.destroy();
        await expect(openRfc2217(`127.0.0.1:${await freeTcpPort()}`, 115200, 1000)).rejects.toThrow(/the serial server 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
      } finally {
        await host.close();
      }
    } finally {
      await socat.stop();
    }
  }, 60_000);

  it('a board naming a host the lab does not have is refused naming it', () => {
    const r = labSchema.safeParse({ name: 'l', hosts: {}, boards: { b: { profile: 'x', host: 'shelf9', serial: { rfc2217: 'shelf9:4001' }, power: { driver: 'manual' } } } });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toContain('boards.b.host: names no host of this lab (hosts: none)');
  });
});
