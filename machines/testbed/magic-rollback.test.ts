// fleetlab's magic rollback script (machines/testbed/nixos/fleetlab-magic-rollback), the one file fleetlab's NixOS
// module runs (arm from its activation script, watch from its service) and switchWithMagicRollback() runs on a guest
// without the module: on a profile in a temporary directory, with the testbed's nix-env on PATH and systems whose
// switch-to-configuration records how it was called, under busybox sh and the host's sh.
import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { which } from '../../harness/qemu/host-packages.ts';

const SCRIPT = join(import.meta.dirname, 'nixos/fleetlab-magic-rollback');
const shells = [['sh'], ...(which('busybox') ? [['busybox', 'sh']] : [])];
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A profile with generations 1 (system a) and 2 (system b, current), a calls log, the testbed's nix-env on PATH. */
function world() {
  const d = mkdtempSync(join(tmpdir(), 'fleetlab-mr-'));
  dirs.push(d);
  const bin = join(d, 'bin');
  mkdirSync(bin);
  copyFileSync(join(import.meta.dirname, 'rootfs/usr/bin/nix-env'), join(bin, 'nix-env'));
  chmodSync(join(bin, 'nix-env'), 0o755);
  const system = (name: string) => {
    const s = join(d, name);
    mkdirSync(join(s, 'bin'), { recursive: true });
    writeFileSync(join(s, 'bin/switch-to-configuration'), `#!/bin/sh\necho "${name} $1" >> ${join(d, 'calls')}\n`, { mode: 0o755 });
    return s;
  };
  const [a, b] = [system('a'), system('b')];
  mkdirSync(join(d, 'profiles'));
  symlinkSync(a, join(d, 'profiles/system-1-link'));
  symlinkSync(b, join(d, 'profiles/system-2-link'));
  symlinkSync('system-2-link', join(d, 'profiles/system'));
  const env = { PATH: `${bin}:${process.env.PATH}`, FLEETLAB_MAGIC_ROLLBACK_DIR: join(d, 'mr'), FLEETLAB_PROFILE: join(d, 'profiles/system') };
  const calls = () => (existsSync(join(d, 'calls')) ? readFileSync(join(d, 'calls'), 'utf8') : '');
  const file = (f: string) => (existsSync(join(d, 'mr', f)) ? readFileSync(join(d, 'mr', f), 'utf8').trim() : undefined);
  return { d, a, b, env, calls, file, profile: () => readlinkSync(join(d, 'profiles/system')) };
}

describe.each(shells)('fleetlab-magic-rollback under %s', (...shell) => {
  const run = (env: Record<string, string>, ...args: string[]) => execa(shell[0]!, [...shell.slice(1), SCRIPT, ...args], { reject: false, env });

  it('a switch not confirmed in time: the profile back on the previous system, its switch-to-configuration switch run, "rolled-back 0"', async () => {
    const w = world();
    expect((await run(w.env, 'arm', 'switch', w.a)).exitCode).toBe(0);
    expect(w.file('armed')).toBe(`switch ${w.a}`);
    const r = await run(w.env, 'watch', '1');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`no confirmation within 1 s: going back to ${w.a} (switch)`);
    expect(w.profile()).toBe('system-1-link');
    expect(w.calls()).toBe('a switch\n');
    expect([w.file('result'), w.file('armed'), w.file('waiting'), w.file('rolling-back')]).toEqual(['rolled-back 0', undefined, undefined, undefined]);
  });

  it('after a test, only the previous system is activated again: the profile stays where it was', async () => {
    const w = world();
    await run(w.env, 'arm', 'test', w.a);
    await run(w.env, 'watch', '1');
    expect(w.profile()).toBe('system-2-link');
    expect(w.calls()).toBe('a test\n');
    expect(w.file('result')).toBe('rolled-back 0');
  });

  it('confirmed while it waits: nothing is rolled back', async () => {
    const w = world();
    await run(w.env, 'arm', 'switch', w.a);
    const watching = run(w.env, 'watch', '20');
    for (let i = 0; i < 50 && w.file('waiting') === undefined; i++) await new Promise((r) => setTimeout(r, 100));
    expect(w.file('waiting')).toBe(`switch ${w.a}`);
    writeFileSync(join(w.d, 'mr/confirmed'), '');
    expect((await watching).exitCode).toBe(0);
    expect([w.file('result'), w.calls(), w.profile()]).toEqual(['confirmed', '', 'system-2-link']);
  });

  it("the rollback's own activation does not arm again; nothing armed, watch does nothing; bad arguments are refused", async () => {
    const w = world();
    mkdirSync(join(w.d, 'mr'));
    writeFileSync(join(w.d, 'mr/rolling-back'), '');
    await run(w.env, 'arm', 'switch', w.a);
    expect([w.file('armed'), w.file('rolling-back')]).toEqual([undefined, undefined]);
    expect((await run(w.env, 'watch', '1')).stdout).toContain('nothing armed');
    expect(w.calls()).toBe('');
    for (const [args, msg] of [[['arm', 'boot', w.a], /ACTION must be switch or test, not "boot"/], [['arm', 'switch'], /give the system that ran before/], [['watch', 'x'], /SECONDS must be a whole number/], [['frob'], /usage: fleetlab-magic-rollback arm/]] as const) {
      const r = await run(w.env, ...args);
      expect([r.exitCode, r.stderr]).toEqual([2, expect.stringMatching(msg)]);
    }
  });
});
