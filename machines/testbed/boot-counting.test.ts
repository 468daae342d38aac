// fleetlab's boot counting script (machines/testbed/nixos/fleetlab-boot-counting), the one file fleetlab's NixOS
// module runs after nixpkgs' systemd-boot builder and the testbed runs after its builder stand-in: on an ESP in a
// temporary directory, with busybox sh (the testbed's shell) and the host's sh (a NixOS guest's is bash). The ESP is
// written as systemd-boot-builder.py writes it (nixos-generation-N.conf for every generation, an exact default, old
// plain entries removed), the EFI variables as systemd-boot sets them.
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { which } from '../../harness/qemu/host-packages.ts';

const SCRIPT = join(import.meta.dirname, 'nixos/fleetlab-boot-counting');
const GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';
const shells = [['sh'], ...(which('busybox') ? [['busybox', 'sh']] : [])];

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function esp(): { esp: string; efivars: string } {
  const d = mkdtempSync(join(tmpdir(), 'fleetlab-bc-'));
  dirs.push(d);
  mkdirSync(join(d, 'boot/loader/entries'), { recursive: true });
  mkdirSync(join(d, 'efivars'));
  return { esp: join(d, 'boot'), efivars: join(d, 'efivars') };
}

/** What systemd-boot-builder.py does: an entry per generation (rewritten), plain entries of gone ones removed, an exact default. */
function builder(boot: string, gens: number[], current: number): void {
  const dir = join(boot, 'loader/entries');
  for (const n of gens) writeFileSync(join(dir, `nixos-generation-${n}.conf`), `title NixOS\nversion Generation ${n}\nlinux /k${n}\n`);
  for (const f of readdirSync(dir)) {
    const m = /^nixos-generation-(\d+)\.conf$/.exec(f); // remove_old_entries: counted names fail its int() and stay
    if (m && !gens.includes(Number(m[1]))) rmSync(join(dir, f));
  }
  writeFileSync(join(boot, 'loader/loader.conf'), `timeout 5\ndefault nixos-generation-${current}.conf\neditor 0\nconsole-mode keep\n`);
}

/** systemd-boot booting an entry: a counted one is counted down (renamed) and named in LoaderBootCountPath. */
function boot(e: { esp: string; efivars: string }, file: string): string {
  const dir = join(e.esp, 'loader/entries');
  rmSync(join(e.efivars, `LoaderBootCountPath-${GUID}`), { force: true });
  let name = file;
  const m = /^(.*)\+(\d+)(?:-(\d+))?\.conf$/.exec(file);
  if (m && Number(m[2]) > 0) {
    name = `${m[1]}+${Number(m[2]) - 1}-${Number(m[3] ?? 0) + 1}.conf`;
    writeFileSync(join(dir, name), readFileSync(join(dir, file)));
    rmSync(join(dir, file));
    writeFileSync(join(e.efivars, `LoaderBootCountPath-${GUID}`), Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from(`\\loader\\entries\\${name}\0`, 'utf16le')]));
  }
  writeFileSync(join(e.efivars, `LoaderEntrySelected-${GUID}`), Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from(`${name}\0`, 'utf16le')]));
  return name;
}

const entries = (e: { esp: string }) => readdirSync(join(e.esp, 'loader/entries')).sort();
const loaderDefault = (e: { esp: string }) => /^default (.*)$/m.exec(readFileSync(join(e.esp, 'loader/loader.conf'), 'utf8'))?.[1];

describe.each(shells)('fleetlab-boot-counting under %s', (...shell) => {
  const run = (e: { esp: string; efivars: string }, args: string[], env: Record<string, string> = {}) =>
    execa(shell[0]!, [...shell.slice(1), SCRIPT, ...args], { reject: false, env: { FLEETLAB_EFIVARS: e.efivars, ...env } });

  it('install: a new default generation goes on trial with TRIES, the default becomes the pattern; the only generation does not', async () => {
    const e = esp();
    builder(e.esp, [1], 1);
    expect((await run(e, ['install', e.esp, '3'])).exitCode).toBe(0);
    expect(entries(e)).toEqual(['nixos-generation-1.conf']);
    builder(e.esp, [1, 2], 2);
    const r = await run(e, ['install', e.esp, '3']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('generation 2 is on trial: nixos-generation-2+3.conf');
    expect(entries(e)).toEqual(['nixos-generation-1.conf', 'nixos-generation-2+3.conf']);
    expect(loaderDefault(e)).toBe('nixos-generation-*');
    expect(readFileSync(join(e.esp, 'loader/loader.conf'), 'utf8')).toBe('timeout 5\ndefault nixos-generation-*\neditor 0\nconsole-mode keep\n');
  });

  it('the builder run again: the entry on trial keeps its counter and takes the new text; no plain copy is left beside it', async () => {
    const e = esp();
    builder(e.esp, [1, 2], 2);
    await run(e, ['install', e.esp, '2']);
    const booted = boot(e, 'nixos-generation-2+2.conf');
    expect(booted).toBe('nixos-generation-2+1-1.conf');
    builder(e.esp, [1, 2], 2);
    writeFileSync(join(e.esp, 'loader/entries/nixos-generation-2.conf'), 'title NixOS\nversion Generation 2 rewritten\n');
    expect((await run(e, ['install', e.esp, '2'])).exitCode).toBe(0);
    expect(entries(e)).toEqual(['nixos-generation-1.conf', 'nixos-generation-2+1-1.conf']);
    expect(readFileSync(join(e.esp, 'loader/entries/nixos-generation-2+1-1.conf'), 'utf8')).toContain('rewritten');
    expect(loaderDefault(e)).toBe('nixos-generation-*');
  });

  it('bless: the booted entry on trial loses its counter and the exact default comes back; it stays blessed when the builder runs again', async () => {
    const e = esp();
    builder(e.esp, [1, 2], 2);
    await run(e, ['install', e.esp, '2']);
    boot(e, 'nixos-generation-2+2.conf');
    expect((await run(e, ['state', e.esp])).stdout.trim()).toBe(join(e.esp, 'loader/entries/nixos-generation-2+1-1.conf'));
    const r = await run(e, ['bless', e.esp]);
    expect(r.stdout).toContain('blessed nixos-generation-2.conf (was nixos-generation-2+1-1.conf)');
    expect(entries(e)).toEqual(['nixos-generation-1.conf', 'nixos-generation-2.conf']);
    expect(loaderDefault(e)).toBe('nixos-generation-2.conf');
    builder(e.esp, [1, 2], 2);
    await run(e, ['install', e.esp, '2']);
    expect(entries(e)).toEqual(['nixos-generation-1.conf', 'nixos-generation-2.conf']);
    expect(loaderDefault(e)).toBe('nixos-generation-2.conf');
    // A rollback to a generation seen before puts nothing on trial.
    builder(e.esp, [1, 2], 1);
    await run(e, ['install', e.esp, '2']);
    expect(entries(e)).toEqual(['nixos-generation-1.conf', 'nixos-generation-2.conf']);
    expect(loaderDefault(e)).toBe('nixos-generation-1.conf');
    // Booted from an entry without a counter: nothing to bless.
    boot(e, 'nixos-generation-1.conf');
    expect((await run(e, ['bless', e.esp])).stdout).toContain('not on trial: nothing to bless');
  });

  it('check: units failed on a trial boot exits 1 (the caller reboots); on a boot not on trial, and when healthy, 0', async () => {
    const e = esp();
    builder(e.esp, [1, 2], 2);
    await run(e, ['install', e.esp, '2']);
    boot(e, 'nixos-generation-2+2.conf');
    const bad = await run(e, ['check', e.esp], { FLEETLAB_FAILED_UNITS: 'app.service migrate.service' });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toContain('not healthy, failed units: app.service migrate.service; nixos-generation-2+1-1.conf is on trial');
    const good = await run(e, ['check', e.esp], { FLEETLAB_FAILED_UNITS: '' });
    expect([good.exitCode, good.stdout.trim()]).toEqual([0, 'fleetlab-boot-counting: healthy: nixos-generation-2+1-1.conf can be blessed']);
    boot(e, 'nixos-generation-1.conf');
    const plain = await run(e, ['check', e.esp], { FLEETLAB_FAILED_UNITS: 'app.service' });
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toContain('the booted entry is not on trial');
  });

  it('a trial used up stays counted at 0; a newer generation goes on trial beside it; entries of gone generations go', async () => {
    const e = esp();
    builder(e.esp, [1, 2, 3], 3);
    writeFileSync(join(e.esp, 'loader/fleetlab-known-generations'), '1\n2\n');
    await run(e, ['install', e.esp, '1']);
    expect(boot(e, 'nixos-generation-3+1.conf')).toBe('nixos-generation-3+0-1.conf');
    builder(e.esp, [2, 3, 4], 4);
    const r = await run(e, ['install', e.esp, '1']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(entries(e)).toEqual(['nixos-generation-2.conf', 'nixos-generation-3+0-1.conf', 'nixos-generation-4+1.conf']);
    expect(loaderDefault(e)).toBe('nixos-generation-*');
    builder(e.esp, [2, 4], 4);
    await run(e, ['install', e.esp, '1']);
    expect(entries(e)).toEqual(['nixos-generation-2.conf', 'nixos-generation-4+1.conf']);
    expect(readFileSync(join(e.esp, 'loader/fleetlab-known-generations'), 'utf8')).toBe('2\n4\n');
  });

  it('bad input: no ESP, an ESP without systemd-boot, TRIES not a number above 0, an unknown command', async () => {
    const e = esp();
    builder(e.esp, [1, 2], 2);
    const cases: Array<[string[], RegExp]> = [
      [['install'], /give the EFI system partition's mount point/],
      [['install', join(e.esp, 'nope'), '2'], /holds no systemd-boot configuration/],
      [['install', e.esp, '0'], /TRIES must be a whole number above 0, not "0"/],
      [['install', e.esp, 'x'], /TRIES must be a whole number above 0, not "x"/],
      [['frobnicate', e.esp], /usage: fleetlab-boot-counting install ESP TRIES/],
    ];
    for (const [args, msg] of cases) {
      const r = await run(e, args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    expect(existsSync(join(e.esp, 'loader/fleetlab-known-generations'))).toBe(false);
  });
});
