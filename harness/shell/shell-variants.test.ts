// The shell channel on the shells real guests have: busybox ash (the testbed), dash (Debian's and Ubuntu's /bin/sh,
// no `read -t`) and bash (NixOS's backdoor). Real guests from Debian's packages, booted once each and shared.
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError, ConfigurationError } from '../errors/fleetlab-error.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import type { MachineProfile } from '../qemu/profile.ts';
import { QemuMachine } from '../qemu/qemu-machine.ts';

const logDir = join(tmpdir(), `fleetlab-test-shells-${process.pid}`);
const direct = await loadProfile('x86_64-direct');
const withImage = (image: string, append = direct.boot.kind === 'testbed' ? direct.boot.append : ''): MachineProfile => ({
  ...direct,
  name: `x86_64-${image}`,
  boot: { kind: 'testbed', image, append },
});

const shells = [
  { shell: 'busybox', image: 'x86_64', binsh: /busybox/, watchdog: 'read -t' },
  { shell: 'dash', image: 'x86_64-dash', binsh: /\/bin\/dash$/, watchdog: 'sleep per command' },
  { shell: 'bash', image: 'x86_64-bash', binsh: /\/bin\/bash$/, watchdog: 'read -t' },
] as const;

const machines = new Map<string, QemuMachine>();

beforeAll(async () => {
  await Promise.all(
    shells.map(async (s) => {
      const m = new QemuMachine(withImage(s.image), { name: `sh-${s.shell}`, logDir });
      machines.set(s.shell, m);
      await m.start();
      await m.waitForShell({ timeout: 180_000 });
    }),
  );
}, 300_000);

afterAll(async () => {
  await Promise.all([...machines.values()].map((m) => m.stop()));
});

describe.each(shells)('shell channel on $shell', ({ shell, binsh, watchdog }) => {
  const m = () => machines.get(shell)!;

  it(`/bin/sh is ${shell} and the guest watchdog is "${watchdog}"`, async () => {
    expect((await m().succeed('readlink -f /bin/sh || echo /bin/sh')).trim()).toMatch(binsh);
    expect(await m().succeed('echo "$0"')).not.toBe('');
  });

  it('returns exact exit codes and separates stdout from stderr', async () => {
    expect((await m().execute('true')).exitCode).toBe(0);
    expect((await m().execute('exit 42')).exitCode).toBe(42);
    expect((await m().execute('no-such-command-here')).exitCode).toBe(127);
    const r = await m().execute('echo out; echo err >&2');
    expect([r.stdout, r.stderr]).toEqual(['out\n', 'err\n']);
  });

  it('gives a command at least its timeout, then kills it with exit code 124, marked as killed', async () => {
    const t0 = performance.now();
    const r = await m().execute('sleep 30; echo never', { timeout: 3000 });
    const took = performance.now() - t0;
    expect(r.exitCode).toBe(124);
    expect(r.timedOut).toBe(true);
    expect(r.stdout).toBe('');
    expect(took).toBeGreaterThanOrEqual(3000);
    expect(took).toBeLessThan(8000);
    expect((await m().execute('ps | grep -v grep | grep -c "sleep 30"')).stdout.trim()).toBe('0');
  });

  it("a command's own exit code 124 is not called a timeout", async () => {
    const r = await m().execute('exit 124', { timeout: 10_000 });
    expect(r.exitCode).toBe(124);
    expect(r.timedOut).toBe(false);
    const own = (await m().succeed('exit 124').catch((e: unknown) => e)) as CommandError;
    expect(own.message).toContain('the command itself exited 124; fleetlab did not time it out');
    const killed = (await m().succeed('sleep 20', { timeout: 1000 }).catch((e: unknown) => e)) as CommandError;
    expect(killed.message).toMatch(/killed by fleetlab in the guest when its time ran out: 1\.0 s given/);
  });

  it('leaves no timer process behind after many commands', async () => {
    for (let i = 0; i < 20; i++) await m().succeed('true');
    await new Promise((r) => setTimeout(r, 300));
    // The channel's timers sleep for the command's budget (900 s by default); this command's own sleeps 77 s.
    expect((await m().succeed('ps -o args | grep -c "^sleep 900$" || true', { timeout: 77_000 })).trim()).toBe('0');
  });

  it("a command that kills the channel's own timer is not reported as timed out", async () => {
    const r = await m().execute('killall sleep 2>/dev/null || true; pkill sleep 2>/dev/null || true; echo done', { timeout: 30_000 });
    expect(r).toMatchObject({ exitCode: 0, timedOut: false, stdout: 'done\n' });
  });

  it('carries every byte value and a background job holding stdout does not hang it', async () => {
    await m().succeed('i=0; while [ $i -lt 256 ]; do printf "\\\\$(printf %03o $i)"; i=$((i+1)); done > /tmp/allbytes');
    const r = await m().execute('cat /tmp/allbytes');
    expect(r.stdoutBytes.equals(Buffer.from([...Array(256).keys()]))).toBe(true);
    const t0 = performance.now();
    expect((await m().execute('sleep 1000 & echo started')).stdout).toBe('started\n');
    expect(performance.now() - t0).toBeLessThan(5000);
    await m().succeed('kill $(pidof sleep) 2>/dev/null || true');
  });

  it(`runs commands strictly: set -eu${shell === 'dash' ? ' (dash has no pipefail)' : ' and pipefail'}; { strict: false } is plain sh`, async () => {
    await expect(m().succeed('false; true')).rejects.toThrow(/exited with 1[\s\S]*\$ false; true/);
    await expect(m().succeed('echo "${FL_NOT_SET}"')).rejects.toThrow(/was expected to succeed/);
    expect((await m().execute('echo "${FL_NOT_SET}"')).stderr).toMatch(/FL_NOT_SET/);
    if (shell === 'dash') await m().succeed('false | true');
    else await expect(m().succeed('false | true')).rejects.toThrow(/exited with 1[\s\S]*\$ false \| true/);
    // Conditions and lists are not failures under set -e.
    expect(await m().succeed('if false; then echo no; fi; false || echo yes; ! false')).toBe('yes\n');
    for (const cmd of ['false; true', 'false | true', 'echo "${FL_NOT_SET}"']) await m().succeed(cmd, { strict: false });
    // Each wait takes it too.
    await m().waitUntilSucceeds('false; true', { strict: false, timeout: '10s' });
    await expect(m().waitUntilSucceeds('false; true', { timeout: '2s' })).rejects.toThrow(/last try exited 1/);
  });

  it('runs several commands in order, as NTD does, and stops at the first that fails', async () => {
    expect(await m().succeed(['echo a', 'echo b > /tmp/fl-b', 'cat /tmp/fl-b'])).toBe('a\nb\n');
    await m().succeed('rm -f /tmp/fl-never');
    await expect(m().succeed(['true', 'exit 5', 'touch /tmp/fl-never'])).rejects.toThrow(/exited with 5[\s\S]*\$ exit 5/);
    await m().fail('test -e /tmp/fl-never');
    expect(await m().fail(['false', 'echo out; exit 2'])).toBe('out\n');
    await expect(m().fail(['false', 'true'])).rejects.toThrow(/was expected to fail/);
  });

  it('carries 2 MB of output intact, by checksum', async () => {
    await m().succeed('head -c 2097152 /dev/urandom > /tmp/big');
    const want = (await m().succeed('sha256sum /tmp/big')).split(' ')[0];
    const r = await m().execute('cat /tmp/big', { timeout: 60_000 });
    expect(createHash('sha256').update(r.stdoutBytes).digest('hex')).toBe(want);
  });
});

describe('a profile whose guest.shell.strict is false', () => {
  it('runs commands in plain sh unless a call asks for strict', async () => {
    const base = withImage('x86_64');
    const profile: MachineProfile = { ...base, name: 'x86_64-plain', guest: { ...base.guest, shell: { kind: 'backdoor', console: 'hvc0', strict: false } } };
    const m = new QemuMachine(profile, { name: 'sh-plain', logDir });
    try {
      await m.start();
      await m.waitForShell({ timeout: 120_000 });
      expect(await m.succeed('false; echo plain')).toBe('plain\n');
      await m.succeed('false | true');
      await expect(m.succeed('false; true', { strict: true })).rejects.toThrow(/exited with 1/);
    } finally {
      await m.stop();
    }
  }, 180_000);
});

describe('a guest that lacks what the channel needs', () => {
  it('fails setup with what is missing, not a limp channel', async () => {
    // dash with nothing on PATH (busybox's ash would still find its own applets).
    const m = new QemuMachine(withImage('x86_64-dash', 'console=ttyS0 panic=-1 fleetlab.backdoor=bare'), { name: 'sh-bare', logDir });
    try {
      await m.start();
      const err = (await m.waitForShell({ timeout: 120_000 }).catch((e: unknown) => e)) as ConfigurationError;
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err.message).toMatch(/^The shell channel of sh-bare cannot run in this guest: missing: head wc rm mkdir dd sleep\(this shell's read has no -t\)/);
      await expect(m.execute('true')).rejects.toThrow(/cannot run in this guest/);
    } finally {
      await m.stop();
    }
  }, 180_000);
});
