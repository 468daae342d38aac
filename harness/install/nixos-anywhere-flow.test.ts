// The nixos-anywhere flow's reading of the tool, without a machine: a scripted nixos-anywhere (a few lines of bash
// printing the real tool's step lines, in its order, then exiting as told) run through runPhases(), and the options
// checked before anything starts. The real output is nixos-anywhere 1.13.0's (src/nixos-anywhere.sh `step`).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InfrastructureError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import type { Machine } from '../protocols/machine.ts';
import { ANYWHERE_PHASES, nixosAnywhere, runPhases, type AnywhereStep } from './nixos-anywhere.ts';

const dir = mkdtempSync(join(tmpdir(), 'fleetlab-na-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A nixos-anywhere that prints `lines` (a "sleep N" line sleeps) and exits `code`. */
function tool(name: string, lines: string[], code = 0): string {
  const f = join(dir, name);
  writeFileSync(f, `#!/usr/bin/env bash\n${lines.map((l) => (l.startsWith('sleep ') ? l : `echo ${JSON.stringify(l)}`)).join('\n')}\nexit ${code}\n`);
  chmodSync(f, 0o755);
  return f;
}

const REAL = [
  '### Uploading install SSH keys ###',
  '### Gathering machine facts ###',
  '### Switching system into kexec ###',
  'machine will boot into nixos in 6s...',
  '### Gathering machine facts ###',
  'copying path /nix/store/…-disko from local',
  '### Formatting hard drive with disko ###',
  '### Uploading the system closure ###',
  '### Installing NixOS ###',
  '### Rebooting ###',
  '### Waiting for the machine to become unreachable due to reboot ###',
  '### Done! ###',
];

const TIMEOUTS: Record<AnywhereStep, number> = { build: 20_000, connect: 20_000, kexec: 20_000, disko: 20_000, install: 20_000, reboot: 20_000, 'first boot': 20_000 };
const machine = { name: 'target', state: 'running', log: { note: () => undefined, lastLines: () => [] }, on: () => undefined, off: () => undefined } as unknown as Machine;

async function phases(command: string, opts: { build?: boolean; phases?: string[]; timeouts?: Partial<Record<AnywhereStep, number>> } = {}) {
  const steps: string[] = [];
  const run = async <T>(name: string, fn: () => Promise<T>) => {
    steps.push(name);
    return fn();
  };
  const result = await runPhases(machine, command, [], { phases: (opts.phases ?? [...ANYWHERE_PHASES]) as never, timeouts: { ...TIMEOUTS, ...opts.timeouts }, build: !!opts.build }, run as never, 'install.nixosAnywhere(target)').then(
    (output) => ({ output }),
    (error: unknown) => ({ error: error as Error }),
  );
  return { steps, ...result };
}

describe('nixos-anywhere: its step lines read as the flow\'s steps', () => {
  it("the real tool's lines: connect, kexec until the installer answers (facts gathered again), disko, install, reboot", async () => {
    const r = await phases(tool('ok', REAL));
    expect(r).toMatchObject({ steps: ['connect', 'kexec', 'disko', 'install', 'reboot'] });
    expect('output' in r && r.output.at(-1)).toBe('### Done! ###');
  });

  it('with a flake, the local build is a step of its own that ends at "Uploading install SSH keys"', async () => {
    const r = await phases(tool('flake', ['building the system …', ...REAL]), { build: true });
    expect(r.steps).toEqual(['build', 'connect', 'kexec', 'disko', 'install', 'reboot']);
    const slow = await phases(tool('slow-build', ['building …', 'sleep 5', ...REAL]), { build: true, timeouts: { build: 1000 } });
    expect(slow.steps).toEqual(['build']);
    expect('error' in slow && slow.error).toBeInstanceOf(TimeoutError);
    expect('error' in slow && slow.error.message).toMatch(/nixos-anywhere's build of the flake's disko script and system on this host[\s\S]*timeouts: \{ build: ms \}/);
  });

  it('the copy after kexec belongs to the next phase: failing there is a disko failure, not a kexec that never came back', async () => {
    const r = await phases(tool('copy-fails', [...REAL.slice(0, 6), 'error: cannot add path to the store'], 1));
    expect(r.steps).toEqual(['connect', 'kexec', 'disko']);
    expect('error' in r && r.error).toBeInstanceOf(TestFailure);
    expect('error' in r && r.error.message).toMatch(/exited 1 in its disko phase:[\s\S]*cannot add path/);
  });

  it('a phase that exits non-zero: getting in (connect, kexec) is an infrastructure error, the rest test failures, each naming its phase', async () => {
    const cut: Array<[string, number, typeof InfrastructureError | typeof TestFailure]> = [
      ['connect', 2, InfrastructureError],
      ['kexec', 4, InfrastructureError],
      ['disko', 7, TestFailure],
      ['install', 9, TestFailure],
      ['reboot', 10, TestFailure],
    ];
    for (const [phase, at, kind] of cut) {
      const r = await phases(tool(`fail-${phase}`, [...REAL.slice(0, at), 'aborted: it went wrong'], 1));
      expect('error' in r && r.error, phase).toBeInstanceOf(kind);
      expect('error' in r && r.error.message, phase).toMatch(new RegExp(`nixos-anywhere exited 1 in its ${phase} phase:[\\s\\S]*aborted: it went wrong`));
    }
    const build = await phases(tool('fail-build', ['error: builder for …-nixos-system failed'], 1), { build: true });
    expect('error' in build && build.error).toBeInstanceOf(TestFailure);
    expect('error' in build && build.error.message).toMatch(/exited 1 in its build phase/);
  });

  it("a real run's output (nixos-anywhere 1.13.0 installing the x86_64-bash testbed, captured): every phase, then Done!", async () => {
    // fixtures/nixos-anywhere-1.13.0-full.txt: the unmodified script (91fc9b70) with --store-paths, run by
    // `FLEETLAB_NIXOS_ANYWHERE=… ./fleetlab run scenarios/install.ts --grep 'nixos-anywhere: x86_64'` (its output as
    // fleetlab logged it): nix copy of the disko script to the kexec installer, of the system to local?root=/mnt.
    const real = readFileSync(join(import.meta.dirname, 'fixtures/nixos-anywhere-1.13.0-full.txt'), 'utf8').trimEnd().split('\n');
    const r = await phases(tool('real-full', real));
    expect(r.steps).toEqual(['connect', 'kexec', 'disko', 'install', 'reboot']);
    expect('output' in r && r.output.at(-1)).toBe('### Done! ###');
    // The lines that end each phase, in the real tool's order: a second fact gathering after the kexec, disko's copy before its step line.
    const said = 'output' in r ? r.output : [];
    const at = (l: string, from = 0) => said.indexOf(l, from);
    const facts2 = at('### Gathering machine facts ###', at('### Switching system into kexec ###'));
    expect(facts2).toBeGreaterThan(0);
    expect(said.findIndex((l) => /^copying path '\/nix\/store\/[a-z0-9]{32}-disko' to 'ssh:\/\/root@/.test(l))).toBeGreaterThan(facts2);
    expect(at('### Formatting hard drive with disko ###')).toBeGreaterThan(facts2);
  });

  it("a real run's output against the busybox testbed (nixos-anywhere 1.13.0, captured): connect, then its abort in get-facts as an infrastructure error", async () => {
    // fixtures/nixos-anywhere-1.13.0-connect.txt: the unmodified script (91fc9b70) with --store-paths against the
    // x86_64 testbed, stopped by get-facts.sh's `setsid --wait true`, which busybox-static's ash answers with its own
    // setsid (the stand-in refuses that testbed the same way: install.test.ts).
    const real = readFileSync(join(import.meta.dirname, 'fixtures/nixos-anywhere-1.13.0-connect.txt'), 'utf8').trimEnd().split('\n');
    const r = await phases(tool('real-connect', real, 1));
    expect(r.steps).toEqual(['connect']);
    expect('error' in r && r.error).toBeInstanceOf(InfrastructureError);
    expect('error' in r && r.error.message).toMatch(/exited 1 in its connect phase:[\s\S]*### Gathering machine facts ###\naborted: no setsid command respecting --wait found/);
  });

  it('exit 0 without "Done!", or without a requested phase\'s step line, is no success', async () => {
    const noDone = await phases(tool('no-done', REAL.slice(0, -1)));
    expect('error' in noDone && noDone.error.message).toMatch(/exited 0 without "### Done! ###"/);
    // What --stop-after-disko does (the real tool's deprecated flag overrides --phases): disko, then Done!.
    const stopped = await phases(tool('stopped', [...REAL.slice(0, 7), '### Done! ###']));
    expect('error' in stopped && stopped.error).toBeInstanceOf(TestFailure);
    expect('error' in stopped && stopped.error.message).toMatch(/exited 0 without the install phase's "### Installing NixOS ###" and the reboot phase's "### Rebooting ###"/);
    // Asked for kexec and disko only: those lines are enough.
    expect(await phases(tool('two', [...REAL.slice(0, 7), '### Done! ###']), { phases: ['kexec', 'disko'] })).toMatchObject({ steps: ['connect', 'kexec', 'disko'] });
  });
});

describe('nixos-anywhere options, refused before anything starts', () => {
  const vm = { name: 'target', kind: 'vm' } as unknown as Machine;
  const board = { name: 'board', kind: 'board', state: 'stopped' } as unknown as Machine;
  const ok = { command: '/bin/true', storePaths: ['/bin/sh', '/bin/sh'] as [string, string], kexec: '/bin/sh' };
  it('flags fleetlab sets, or that override --phases, in args', async () => {
    for (const flag of ['--phases', '--no-reboot', '--stop-after-disko', '--vm-test', '-p', '-i', '--target-host', '--post-kexec-ssh-port', '--kexec']) {
      await expect(nixosAnywhere(vm, { ...ok, args: [flag, 'x'] }), flag).rejects.toThrow(new RegExp(`install\\.nixosAnywhere\\(target\\): args: ${flag} is set by fleetlab`));
    }
    await expect(nixosAnywhere(vm, { ...ok, args: ['--phases=disko'] })).rejects.toThrow(/args: --phases is set by fleetlab \(from the options\); use phases instead/);
  });

  it("a VM has no way to nixos-images' download: kexec is required there, as a file; a board may give a URL", async () => {
    await expect(nixosAnywhere(vm, { ...ok, kexec: undefined })).rejects.toThrow(/kexec: machine target is a VM whose only network is its host link, so nixos-anywhere's default download .* cannot work there/);
    await expect(nixosAnywhere(vm, { ...ok, kexec: 'https://github.com/nix-community/nixos-images/releases/download/nixos-25.05/nixos-kexec-installer-noninteractive-x86_64-linux.tar.gz' })).rejects.toThrow(/kexec: machine target is a VM .* give the tarball as a file/);
    // An unknown phase is named first, whatever else is missing.
    await expect(nixosAnywhere(vm, { ...ok, kexec: undefined, phases: ['partition' as never] })).rejects.toThrow(/phases: unknown phase "partition"/);
    // Without the kexec phase nothing is downloaded.
    await expect(nixosAnywhere(vm, { ...ok, kexec: undefined, phases: ['disko'], args: ['--vm-test'] })).rejects.toThrow(/args: --vm-test/);
    // A board's URL passes the options (and then meets the board: here, one that cannot start).
    const e = await nixosAnywhere(board, { ...ok, kexec: 'https://example.org/kexec.tar.gz' }).then(() => new Error("it started"), (x: unknown) => x as Error);
    expect(e.message).not.toMatch(/kexec:/);
  });
});
