// machine.nixos against what a real NixOS guest answers, without booting one: a machine whose shell replies as a
// NixOS guest would (the bash nixos-rebuild's exit 1 after failed units, no testbed's pause points, systemd-boot's
// EFI variables), each reply chosen by the command it gets. Commands nobody scripted fail the test.
import { describe, expect, it } from 'vitest';
import { NixosHelpers } from './nixos.ts';
import type { NixosMachine } from './nixos-machine.ts';
import type { ExecResult } from '../protocols/shell.ts';

type Reply = Partial<Pick<ExecResult, 'exitCode' | 'stdout' | 'stderr'>>;

function machine(replies: Array<[RegExp, Reply]>): { m: NixosMachine; ran: string[] } {
  const ran: string[] = [];
  const execute = async (command: string): Promise<ExecResult> => {
    ran.push(command);
    const hit = replies.find(([re]) => re.test(command));
    if (!hit) throw new Error(`unscripted command: ${command}`);
    const stdout = hit[1].stdout ?? '';
    return { exitCode: hit[1].exitCode ?? 0, stdout, stderr: hit[1].stderr ?? '', stdoutBytes: Buffer.from(stdout), durationMs: 1 };
  };
  const succeed = async (command: string) => {
    const r = await execute(command);
    if (r.exitCode !== 0) throw new Error(`${command} exited ${r.exitCode}`);
    return r.stdout;
  };
  const m = {
    name: 'real',
    kind: 'vm',
    label: 'machine real',
    boots: 1,
    log: { note: () => undefined, lastLines: () => [] },
    profile: { name: 'x86_64-uefi', arch: 'x86_64', serialConsole: 'ttyS0' },
    testbed: undefined,
    hasHostLink: false,
    machineName: 'real',
    execute,
    succeed,
    waitUntilSucceeds: succeed,
  } as unknown as NixosMachine;
  return { m, ran };
}

const STORE = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-real-25.05';

describe('machine.nixos on a guest that is no testbed', () => {
  it("crashAt points only the testbed's scripts have are a configuration error at once, before anything runs", async () => {
    const { m, ran } = machine([]);
    for (const point of ['bootloader-write', 'activation'] as const) {
      await expect(new NixosHelpers(m).switch(STORE, { crashAt: point })).rejects.toThrow(new RegExp(`crashAt: '${point}'.*only the testbed's switch-to-configuration.*cut the power at 'after-copy' or 'after-profile'`));
    }
    expect(ran).toEqual([]);
  });

  it("rollback(): the bash nixos-rebuild's exit 1 after \"the following units failed\" is a result naming the units, not an error", async () => {
    const stderr = 'switching to configuration...\nwarning: the following units failed: app.service, migrate.service\nwarning: error(s) occurred while switching to the new configuration\n';
    const { m } = machine([[/^nixos-rebuild switch --rollback$/, { exitCode: 1, stderr }]]);
    const r = await new NixosHelpers(m).rollback();
    expect([r.exitCode, r.ok, r.failedUnits]).toEqual([1, false, ['app.service', 'migrate.service']]);
    // nixos-rebuild-ng passes exit 4 through; a failure that names no units is an error still.
    expect((await new NixosHelpers(machine([[/--rollback/, { exitCode: 4, stderr }]]).m).rollback()).failedUnits).toEqual(['app.service', 'migrate.service']);
    await expect(new NixosHelpers(machine([[/--rollback/, { exitCode: 1, stderr: 'error: no generation to roll back to\n' }]]).m).rollback()).rejects.toThrow(/nixos-rebuild switch --rollback exited 1\nerror: no generation to roll back to/);
  });

  it('booted(): on systemd-boot the entry is LoaderEntrySelected, with no fleetlab.entry on the command line', async () => {
    const links = ['/nix/var/nix/profiles/system-1-link /nix/store/a-1', '/nix/var/nix/profiles/system-2-link /nix/store/b-2', '/nix/var/nix/profiles/system-3-link /nix/store/b-2'];
    const out = (selected: string) => ['/nix/store/b-2', 'c0ffee', 'init=/nix/store/b-2/init root=fstab loglevel=4', selected, ...links].join('\n') + '\n';
    // Generations 2 and 3 are one toplevel: the entry says which booted; without one, the newest.
    expect(await new NixosHelpers(machine([[/readlink -f \/run\/booted-system/, { stdout: out('nixos-generation-2.conf') }]]).m).booted()).toEqual({ toplevel: '/nix/store/b-2', generation: 2, entry: 'nixos-generation-2.conf', bootId: 'c0ffee' });
    expect((await new NixosHelpers(machine([[/readlink -f \/run\/booted-system/, { stdout: out('nixos-generation-2+1-1.conf') }]]).m).booted()).generation).toBe(2);
    expect(await new NixosHelpers(machine([[/readlink -f \/run\/booted-system/, { stdout: out('') }]]).m).booted()).toEqual({ toplevel: '/nix/store/b-2', generation: 3, entry: undefined, bootId: 'c0ffee' });
  });

  it('trialBoot() on systemd-boot without boot counting says so at once, naming the option', async () => {
    const { m, ran } = machine([
      [/^e=; for d in \/efi \/boot\/efi \/boot;/, { stdout: 'systemd-boot /boot\n' }],
      [/^readlink \/nix\/var\/nix\/profiles\/system; /, { stdout: 'system-1-link\n/nix/store/a-1\n' }],
      [/boot-counting\.conf/, { stdout: '' }],
    ]);
    await expect(new NixosHelpers(m).trialBoot(STORE)).rejects.toThrow(/boot counting is not enabled on real: set fleetlab\.guest\.bootCounting\.enable = true/);
    expect(ran.some((c) => c.includes('switch-to-configuration') || c.includes('nix-env'))).toBe(false);
  });

  it('bootState(): systemd-boot on an ESP at /efi (or /boot/efi) is read there', async () => {
    const { m, ran } = machine([
      [/^e=; for d in \/efi \/boot\/efi \/boot;/, { stdout: 'systemd-boot /efi\n' }],
      [/^sed -n 's\/\^default\[\[:space:\]\]\*\/\/p' \/efi\/loader\/loader.conf; echo ---; ls \/efi\/loader\/entries;/, { stdout: 'nixos-generation-*\n---\nnixos-generation-1.conf\nnixos-generation-2+1-1.conf\n---\n' }],
    ]);
    const s = await new NixosHelpers(m).bootState();
    expect(s).toMatchObject({ bootloader: 'systemd-boot', default: 'nixos-generation-*', entries: [{ id: 'nixos-generation-1.conf' }, { id: 'nixos-generation-2.conf', triesLeft: 1, triesDone: 1 }] });
    expect(ran.some((c) => c.includes('/boot/loader'))).toBe(false);
  });
});
