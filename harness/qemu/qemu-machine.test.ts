// QemuMachine against a real testbed guest under TCG: the shell channel, consoles, login, screen.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import { QemuMachine } from './qemu-machine.ts';

let m: QemuMachine;

beforeAll(async () => {
  m = await QemuMachine.fromProfile('x86_64-direct', { name: 'shelltest', logDir: join(tmpdir(), `fleetlab-test-${process.pid}`) });
  await m.start();
  await m.waitForShell({ timeout: 120_000 });
});

afterAll(async () => {
  await m?.stop();
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('shell channel', () => {
  it('returns exact exit codes 0, 1 and 127', async () => {
    expect((await m.execute('true')).exitCode).toBe(0);
    expect((await m.execute('false')).exitCode).toBe(1);
    expect((await m.execute('exit 42')).exitCode).toBe(42);
    expect((await m.execute('no-such-command-here')).exitCode).toBe(127);
  });

  it('separates stdout from stderr', async () => {
    const r = await m.execute('echo out; echo err >&2');
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
  });

  it('kills a command at its timeout with exit code 124 and stays usable', async () => {
    const t0 = performance.now();
    const r = await m.execute('sleep 60; echo never', { timeout: 3000 });
    expect(r.exitCode).toBe(124);
    expect(r.stdout).toBe('');
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(await m.succeed('echo still-here')).toBe('still-here\n');
    // The killed command's whole session is gone, children included.
    expect((await m.execute('ps | grep -v grep | grep -c "sleep 60"')).stdout.trim()).toBe('0');
  });

  it('does not hang on a background job that holds stdout', async () => {
    const t0 = performance.now();
    const r = await m.execute('sleep 1000 & echo started');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('started\n');
    expect(performance.now() - t0).toBeLessThan(5000);
    await m.succeed('kill $(pidof sleep) 2>/dev/null || true');
  });

  it('carries every byte value intact', async () => {
    await m.succeed('i=0; while [ $i -lt 256 ]; do printf "\\\\$(printf %03o $i)"; i=$((i+1)); done > /tmp/allbytes');
    const r = await m.execute('cat /tmp/allbytes; cat /tmp/allbytes');
    expect(r.stdoutBytes.length).toBe(512);
    const expected = Buffer.from([...Array(256).keys(), ...Array(256).keys()]);
    expect(r.stdoutBytes.equals(expected)).toBe(true);
  });

  it('carries 10 MB of output intact, by checksum', async () => {
    await m.succeed('head -c 10485760 /dev/urandom > /tmp/big; sha256sum /tmp/big | cut -d" " -f1 > /tmp/big.sum');
    const want = (await m.succeed('cat /tmp/big.sum')).trim();
    const r = await m.execute('cat /tmp/big', { timeout: 120_000 });
    expect(r.stdoutBytes.length).toBe(10485760);
    expect(sha256(r.stdoutBytes)).toBe(want);
    await m.succeed('rm /tmp/big');
  });

  it('cannot be fooled by output that looks like framing', async () => {
    const fake = 'fl0123456789abcdef 0 3 0\nabc\nSpawning backdoor root shell...\n';
    const r = await m.execute(`printf '%s' '${fake}'; exit 5`);
    expect(r.exitCode).toBe(5);
    expect(r.stdout).toBe(fake);
    expect(await m.succeed('echo ok')).toBe('ok\n');
  });

  it('passes commands with quotes, newlines and dollar signs unchanged', async () => {
    const r = await m.succeed(`x='it'"'"'s'; printf '%s|%s\\n' "$x" '$HOME'
echo second line`);
    expect(r).toBe("it's|$HOME\nsecond line\n");
  });

  it('waits for a port to open and close and for a unix socket, on the guest\'s busybox (its socket tables)', async () => {
    await m.succeed('busybox nc -l -p 8080 </dev/null >/dev/null 2>&1 & echo $! > /tmp/nc.pid');
    await m.waitForOpenPort(8080, { timeout: '10s' });
    await m.succeed('kill $(cat /tmp/nc.pid)');
    await m.waitForClosedPort(8080, { timeout: '10s' });
    await m.succeed('busybox syslogd -O /tmp/syslog.log');
    await m.waitForUnixSocket('/dev/log', { datagram: true, timeout: '10s' });
    await expect(m.waitForUnixSocket('/dev/log', { timeout: '1s' })).rejects.toThrow(/a listening stream unix socket at \/dev\/log/);
  });

  it('names the machine as hostname', async () => {
    expect((await m.succeed('hostname')).trim()).toBe('shelltest');
  });
});

describe('shell helpers', () => {
  it('succeed throws a CommandError naming machine, command, exit code and output', async () => {
    const err = await m.succeed('echo some-output; exit 3').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    const e = err as CommandError;
    expect(e.kind).toBe('test-failure');
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain('shelltest');
    expect(e.message).toContain('echo some-output; exit 3');
    expect(e.message).toContain('exited with 3');
    expect(e.message).toContain('some-output');
    expect(e.details.durationMs).toBeTypeOf('number');
  });

  it('fail throws when the command succeeds and returns stdout when it fails', async () => {
    await expect(m.fail('true')).rejects.toThrow(/expected to fail/);
    expect(await m.fail('echo nope; false')).toBe('nope\n');
  });

  it('waitUntilSucceeds and waitForFile wait for a file created later', async () => {
    await m.succeed('rm -f /tmp/later; (sleep 2; echo there > /tmp/later) >/dev/null 2>&1 &');
    await expect(m.execute('test -e /tmp/later')).resolves.toMatchObject({ exitCode: 1 });
    await m.waitForFile('/tmp/later', { timeout: 30_000 });
    expect(await m.waitUntilSucceeds('cat /tmp/later', { timeout: 10_000 })).toBe('there\n');
  });

  it('waitUntilFails waits until a command starts failing', async () => {
    await m.succeed('touch /tmp/going; (sleep 2; rm /tmp/going) >/dev/null 2>&1 &');
    await m.waitUntilFails('test -e /tmp/going', { timeout: 30_000 });
    expect((await m.execute('test -e /tmp/going')).exitCode).toBe(1);
  });

  it('waitForOpenPort waits until a server listens', async () => {
    await m.succeed('(sleep 2; exec nc -l -p 8089) >/dev/null 2>&1 &');
    await expect(m.execute("grep -q ':1F99 ' /proc/net/tcp")).resolves.toMatchObject({ exitCode: 1 });
    await m.waitForOpenPort(8089, { timeout: 30_000 });
  });

  it('waitForOpenPort with an address connects from the guest (busybox nc, which has no -z)', async () => {
    // The guest's web page (busybox httpd on port 80) at its own address, and a port nobody listens on.
    const addr = (await m.succeed("ip -o -4 addr show lo | awk '{ print $4 }' | cut -d/ -f1")).trim();
    await m.waitForOpenPort(80, { addr, timeout: '20s' });
    await expect(m.waitForOpenPort(8099, { addr, timeout: '2s' })).rejects.toThrow(/TCP port 8099 on 127\.0\.0\.1 to accept a connection from shelltest/);
    await m.succeed('(sleep 2; exec nc -l -p 8099) >/dev/null 2>&1 &');
    await m.waitForOpenPort(8099, { addr: '127.0.0.1', timeout: '30s' });
  });

  it('a wait that expires names what it awaited, its budget and the last console lines', async () => {
    const err = await m.waitUntilSucceeds('test -e /tmp/never-there', { timeout: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    const msg = (err as Error).message;
    expect(msg).toContain('test -e /tmp/never-there');
    expect(msg).toContain('2.0 s');
    expect(msg).toMatch(/Last \d+ console lines/);
    expect(msg).toContain('fleetlab testbed: shelltest up');
  });
});

describe('files over the shell channel', () => {
  it('a 1 MB file and a folder go to the guest and back, by hash; the copy out is offered to the report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-copy-'));
    const big = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7919 + (i >> 8)) & 0xff));
    await writeFile(join(dir, 'big.bin'), big);
    const sent = await m.copyToMachine(join(dir, 'big.bin'), '/root/in/big.bin');
    expect(sent).toMatchObject({ path: '/root/in/big.bin', kind: 'file', bytes: 1 << 20, sha256: sha256(big) });
    expect((await m.succeed('sha256sum /root/in/big.bin')).split(' ')[0]).toBe(sha256(big));
    await mkdir(join(dir, 'tree/sub'), { recursive: true });
    await writeFile(join(dir, 'tree/a.txt'), 'alpha\n');
    await writeFile(join(dir, 'tree/sub/b.txt'), "it's $HOME \"quoted\"\n");
    await m.copyToMachine(join(dir, 'tree'), '/root/tree');
    expect(await m.succeed('cat /root/tree/a.txt /root/tree/sub/b.txt')).toBe("alpha\nit's $HOME \"quoted\"\n");

    const artifacts: Array<{ name: string; path: string }> = [];
    m.on('artifact', (a: { name: string; path: string }) => artifacts.push(a));
    await m.succeed('head -c 300000 /dev/urandom > /root/tree/sub/rand.bin');
    const guestSum = (await m.succeed('sha256sum /root/tree/sub/rand.bin')).split(' ')[0];
    const back = await m.copyFromMachine('/root/tree');
    expect(back.path).toBe(join(m.logDir, 'files', 'tree'));
    expect(back.kind).toBe('directory');
    expect(await readFile(join(back.path, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(sha256(await readFile(join(back.path, 'sub/rand.bin')))).toBe(guestSum);
    const file = await m.copyFromMachine('/root/in/big.bin', join(dir, 'out'));
    expect(file.path).toBe(join(dir, 'out', 'big.bin'));
    expect(sha256(await readFile(file.path))).toBe(sha256(big));
    expect(artifacts).toEqual([
      { name: 'shelltest-tree', path: back.path },
      { name: 'shelltest-big.bin', path: file.path },
    ]);
    await expect(m.copyFromMachine('/root/no-such')).rejects.toThrow(/shelltest has no file or folder \/root\/no-such/);
    await expect(m.copyToMachine(join(dir, 'missing'), '/root/x')).rejects.toThrow(/is no file or folder on the host/);
    await expect(m.copyToMachine(join(dir, 'big.bin'), 'relative/x')).rejects.toThrow(/must be absolute/);
  }, 180_000);
});

describe('monitor', () => {
  it('runs HMP and QMP commands and waits for a QMP event, typed', async () => {
    expect(await m.monitor.command('info status')).toMatch(/VM status: running/);
    const stopped = m.monitor.waitForEvent('STOP', { timeout: '10s' });
    await m.monitor.qmp('stop');
    expect((await stopped).event).toBe('STOP');
    expect(await m.monitor.qmp<{ status: string }>('query-status')).toMatchObject({ status: 'paused' });
    const resumed = m.monitor.waitForEvent((e) => e.event === 'RESUME', { timeout: '10s' });
    await m.monitor.qmp('cont');
    expect((await resumed).timestamp?.seconds).toBeGreaterThan(0);
    await expect(m.monitor.waitForEvent('NO_SUCH_EVENT', { timeout: '1s' })).rejects.toThrow(/QMP event NO_SUCH_EVENT/);
    await m.succeed('true');
  });
});

describe('serial console', () => {
  it('captures every console line in a timestamped log, and the backdoor console in a log of its own', async () => {
    const log = await readFile(m.log.path, 'utf8');
    expect(log).toMatch(/^\[\s+\d+\.\d{3}\] .*Linux version/m);
    expect(log).toContain('shelltest login:');
    const hvc0 = await readFile(join(m.logDir, 'shelltest.hvc0.log'), 'utf8');
    expect(hvc0).toMatch(/^\[\s+\d+\.\d{3}\] Spawning backdoor root shell\.\.\./m);
    expect(hvc0).toMatch(/bytes of command output/);
  });

  it('waitForConsoleText times out naming the regex, the budget and the last 20 lines', async () => {
    const err = await m.waitForConsoleText(/this will never appear/, { timeout: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    const e = err as TimeoutError;
    expect(e.message).toContain('/this will never appear/');
    expect(e.message).toContain('after 1.0 s');
    expect(e.message).toContain('console serial0');
    expect((e.details.lastLines as string[]).length).toBe(20);
  });

  it('sees text the guest writes to the console', async () => {
    await m.succeed('echo "marker-$((6*7))" > /dev/ttyS0');
    const match = await m.waitForConsoleText(/marker-(\d+)/, { timeout: 10_000 });
    expect(match[1]).toBe('42');
  });

  it('login fails clearly on a wrong password, then succeeds with the right one despite kernel messages', async () => {
    // Kernel messages interleave with the login dialogue.
    await m.succeed('(i=0; while [ $i -lt 60 ]; do echo "noise $i" > /dev/kmsg; i=$((i+1)); sleep 0.2; done) >/dev/null 2>&1 &');
    const err = await m.login('root', 'wrong-password', { timeout: 60_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TestFailure);
    expect((err as Error).message).toMatch(/Login incorrect/);
    await m.login('root', 'fleetlab', { timeout: 60_000 });
    await m.sendConsole('echo "logged-in-as-$(id -u)"\n');
    await m.waitForConsoleText(/logged-in-as-0/, { timeout: 10_000 });
  });
});

describe('screen', () => {
  it('screenshot is a PNG of the guest framebuffer size, and typed keys reach the guest', async () => {
    await m.succeed('modprobe bochs && for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/graphics/fb0/virtual_size ] && break; sleep 0.5; done');
    const [w, h] = (await m.succeed('cat /sys/class/graphics/fb0/virtual_size')).trim().split(',').map(Number);
    const path = join(m.logDir, 'screen.png');
    await m.screen.screenshot(path);
    const png = await readFile(path);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([w, h]);
    // tty1 runs a shell on the VGA console; type into it.
    await m.screen.typeText('echo typed > /tmp/keys-ok\n');
    await m.waitForFile('/tmp/keys-ok', { timeout: 20_000 });
    expect(await m.succeed('cat /tmp/keys-ok')).toBe('typed\n');
    // What was typed is on tty1's screen (/dev/vcs1).
    expect(await m.ttyText(1)).toContain('echo typed > /tmp/keys-ok');
    // A bare name goes into the machine's folder as <name>.png, offered to the report.
    const shots: string[] = [];
    m.on('artifact', (a: { name: string; path: string }) => shots.push(`${a.name} ${a.path}`));
    const named = await m.screen.screenshot('after-typing');
    expect(named).toBe(join(m.logDir, 'after-typing.png'));
    expect((await readFile(named)).subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(shots).toEqual([`shelltest-screenshot-after-typing.png ${named}`]);
    // The screen's text by OCR (tesseract): a known line drawn on tty1's framebuffer console.
    await m.succeed('printf "\\nHello from fleetlab 4242\\n" > /dev/tty1');
    const seen = await m.screen.waitForText(/Hello from fleetlab 4242/, { timeout: '90s' });
    expect(seen[0]).toBe('Hello from fleetlab 4242');
    expect(await m.screen.text()).toContain('echo typed');
    await expect(m.screen.waitForText('never on this screen', { timeout: '3s' })).rejects.toThrow(/the screen of shelltest to show \/never on this screen\/ \(OCR\); it last read: .*Hello from fleetlab 4242/s);
  });
});
