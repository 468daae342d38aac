// The testbed's nix-env stand-in (machines/testbed/rootfs/usr/bin/nix-env) on a profile in a temporary directory,
// under busybox sh as on the testbed: generations as Nix's profiles.cc makes them.
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { which } from '../../harness/qemu/host-packages.ts';

const NIX_ENV = join(import.meta.dirname, 'rootfs/usr/bin/nix-env');
const dir = mkdtempSync(join(tmpdir(), 'fleetlab-nix-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!which('busybox'))('nix-env stand-in', () => {
  it('--set reuses the newest generation when it already is that path (createGeneration), else makes the next one', async () => {
    const profile = join(dir, 'profiles/system');
    mkdirSync(join(dir, 'profiles'));
    const [a, b] = ['a', 'b'].map((x) => {
      mkdirSync(join(dir, x));
      return join(dir, x);
    });
    const set = async (p: string) => {
      const r = await execa('busybox', ['sh', NIX_ENV, '-p', profile, '--set', p], { reject: false });
      expect(r.exitCode, r.stderr).toBe(0);
      return readlinkSync(profile);
    };
    expect(await set(a!)).toBe('system-1-link');
    expect(await set(a!)).toBe('system-1-link');
    expect(await set(b!)).toBe('system-2-link');
    expect(await set(b!)).toBe('system-2-link');
    // Not the newest: a new generation, as real Nix makes one.
    expect(await set(a!)).toBe('system-3-link');
    expect(readdirSync(join(dir, 'profiles')).sort()).toEqual(['system', 'system-1-link', 'system-2-link', 'system-3-link']);
    // Rolled back to 2, then set to 3's path again: 3 is the newest and is that path, so the profile moves to 3.
    await execa('busybox', ['sh', NIX_ENV, '-p', profile, '--rollback']);
    expect(readlinkSync(profile)).toBe('system-2-link');
    expect(await set(a!)).toBe('system-3-link');
  });
});
