// The nixos-anywhere install flow: the real `nixos-anywhere` command (on PATH, or the path a scenario gives) run as a
// supervised child against a running machine over SSH at its sshEndpoint() (a VM's 127.0.0.1 host-link forward, a
// board's lab-file address; the same port after kexec), its "### … ###" phase lines turned into steps with deadlines of their own (nixos-anywhere has none for
// the kexec phase, and a kexec that never comes back is its most reported failure), its output in the case's log,
// and the installed system's first boot checked afterwards. This file knows nixos-anywhere's command line and output,
// nothing of the testbed's stand-in for it.
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { InfrastructureError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import { spawnSupervised } from '../process/supervisor.ts';
import type { Machine } from '../protocols/machine.ts';
import { Deadline, pollUntil, raceDeadline } from '../time/deadline.ts';
import { badOption, phaseTimeouts, standaloneSteps, verifyInstalled, type InstallReport, type StepRunner } from './install.ts';
import { plain } from '../shell/plain.ts';

/** nixos-anywhere's phases (--phases), in order. */
export const ANYWHERE_PHASES = ['kexec', 'disko', 'install', 'reboot'] as const;
export type AnywherePhase = (typeof ANYWHERE_PHASES)[number];
/** The flow's steps: connecting (keys, facts), nixos-anywhere's phases, then the installed system's first boot. */
export type AnywhereStep = 'connect' | AnywherePhase | 'first boot';

const DEFAULT_MS: Record<AnywhereStep, number> = { connect: 120_000, kexec: 300_000, disko: 180_000, install: 900_000, reboot: 180_000, 'first boot': 300_000 };
/** nixos-anywhere's step lines ("### Switching system into kexec ###") and the phase each begins. */
const MARKERS: Array<[RegExp, AnywhereStep]> = [
  [/^Switching system into kexec$/, 'kexec'],
  [/^(Formatting hard drive with disko|Building disko script|Uploading .* to .*)$/, 'disko'],
  [/^(Uploading the system closure|Building the system closure|Copying extra files|Installing NixOS)$/, 'install'],
  [/^Rebooting$/, 'reboot'],
];

/** What nixosAnywhere() did: with the reboot phase, the installed system's first boot as checked; without, its output. */
export type AnywhereReport = (InstallReport & { rebooted: true }) | { rebooted: false; output: string };

/** What nixosAnywhere() installs, and how. */
export interface NixosAnywhereOptions {
  /** The nixos-anywhere command: a path, or a name found on PATH. Default "nixos-anywhere". */
  command?: string;
  /** --store-paths <disko-script> <nixos-system>: what to install, built already. */
  storePaths?: [disko: string, system: string];
  /** --flake <uri#host>: what to build and install (needs Nix where nixos-anywhere runs). */
  flake?: string;
  /** --kexec <tarball>: the kexec installer image (default: nixos-anywhere downloads nixos-images'). */
  kexec?: string;
  /** --phases: which of kexec, disko, install, reboot to run. Default all. */
  phases?: AnywherePhase[];
  /** More arguments for nixos-anywhere (--extra-files DIR, --build-on remote, ...). */
  args?: string[];
  /** SSH user and private key (-i); default the testbed's root key. */
  user?: string;
  identity?: string;
  /** The store path of the system expected to boot (default: the one --store-paths names). */
  system?: string;
  /**
   * Memory the target must have for the kexec installer, in MiB. nixos-anywhere's kexec image unpacks into RAM and
   * needs about 1.5 GB: a target with less is refused before anything starts. Default 1536.
   */
  minMemoryMiB?: number;
  expect?: { hostname?: string; generation?: number };
  timeouts?: Partial<Record<AnywhereStep, number>>;
}

/**
 * Installs NixOS on a running machine with nixos-anywhere. The machine needs an SSH endpoint (a VM: ssh: true or
 * hostLink: true in the scenario; a board: a network address in the lab file); a stopped machine is started first. Bad options are configuration errors before anything
 * runs; a kexec that never comes back is an infrastructure error after the kexec step's deadline, naming what the
 * console showed last, and nixos-anywhere (with its ssh children) is stopped.
 */
export async function nixosAnywhere(machine: Machine, o: NixosAnywhereOptions = {}, run: StepRunner = standaloneSteps): Promise<AnywhereReport> {
  const where = `install.nixosAnywhere(${machine.name})`;
  const checked = checkOptions(o, where);
  const target = await prepareTarget(machine, o, checked, run, where);
  const { host, port } = machine.sshEndpoint();
  const args = [
    ...(o.storePaths ? ['--store-paths', o.storePaths[0], o.storePaths[1]] : ['--flake', o.flake!]),
    ...(o.kexec ? ['--kexec', resolve(o.kexec)] : []),
    '--phases', checked.phases.join(','),
    '-i', target.identity,
    '-p', String(port),
    '--post-kexec-ssh-port', String(port),
    ...(o.args ?? []),
    '--target-host', `${target.user}@${host}`,
  ];
  const output = await runPhases(machine, checked.command, args, checked.timeouts, run, where);
  if (!checked.phases.includes('reboot')) return { rebooted: false, output: output.join('\n') };
  const system = o.system ?? (o.storePaths ? storePathOf(o.storePaths[1]) : undefined);
  const report = await run('first boot', () => firstBoot(machine, target, Deadline.after(checked.timeouts['first boot'], 'the installed system to come up'), { hostname: o.expect?.hostname, generation: o.expect?.generation ?? 1 }, system, where), { timeout: checked.timeouts['first boot'] + 5_000 });
  return { ...report, rebooted: true, output: output.join('\n') };
}

/** The options, checked before anything runs: bad ones are configuration errors naming the option. */
function checkOptions(o: NixosAnywhereOptions, where: string): { command: string; phases: AnywherePhase[]; timeouts: Record<AnywhereStep, number>; minMiB: number } {
  const bad = badOption(where);
  const command = findCommand(o.command ?? 'nixos-anywhere');
  if (!command) throw bad('command', o.command ?? 'nixos-anywhere', `${o.command ?? 'nixos-anywhere'} is not a file nor on PATH; install nixos-anywhere (nix profile install github:nix-community/nixos-anywhere) or give its path`);
  if (!o.storePaths === !o.flake) throw bad('storePaths', o.storePaths, 'give either storePaths: [disko-script, nixos-system] or flake: "<uri>#<host>"');
  if (o.storePaths) {
    if (!Array.isArray(o.storePaths) || o.storePaths.length !== 2) throw bad('storePaths', o.storePaths, 'expected [disko-script, nixos-system]');
    for (const p of o.storePaths) if (typeof p !== 'string' || !existsSync(p)) throw bad('storePaths', p, `${String(p)} does not exist`);
  }
  if (o.flake !== undefined && !/^[^\s'"]+#[^\s'"]+$/.test(o.flake)) throw bad('flake', o.flake, 'expected a flake output reference, like .#myhost');
  if (o.kexec !== undefined && !existsSync(o.kexec)) throw bad('kexec', o.kexec, `${o.kexec} does not exist`);
  for (const p of o.phases ?? []) if (!(ANYWHERE_PHASES as readonly string[]).includes(p)) throw bad('phases', p, `unknown phase "${p}"; nixos-anywhere's phases are ${ANYWHERE_PHASES.join(', ')}`);
  const timeouts = phaseTimeouts(o.timeouts, DEFAULT_MS, where);
  if (o.identity !== undefined && !existsSync(o.identity)) throw bad('identity', o.identity, `${o.identity} does not exist`);
  return { command, phases: o.phases ?? [...ANYWHERE_PHASES], timeouts, minMiB: o.minMemoryMiB ?? 1536 };
}

/** The target before nixos-anywhere starts: running (started if it was off), its SSH identity, enough RAM for kexec, its boot before. */
async function prepareTarget(machine: Machine, o: NixosAnywhereOptions, c: { phases: AnywherePhase[]; minMiB: number }, run: StepRunner, where: string): Promise<{ identity: string; user: string; bootBefore: string; bootsBefore: number }> {
  const bad = badOption(where);
  if (machine.state === 'stopped') {
    await run('boot target', async () => {
      await machine.start();
      await machine.waitForShell();
    }, { timeout: 300_000 });
  }
  // The testbed's key is known once its image is (the machine has started).
  const identity = o.identity ?? machine.sshIdentity?.privateKey;
  if (!identity) throw bad('identity', undefined, `machine ${machine.name} is not fleetlab's testbed; give { user, identity } (an SSH key its root accepts)`);
  // Checked before nixos-anywhere starts, on the machine itself (a VM's or a board's RAM alike).
  const memKiB = Number((await plain(machine).succeed("awk '/^MemTotal:/ { print $2 }' /proc/meminfo")).trim());
  if (c.phases.includes('kexec') && memKiB / 1024 < c.minMiB * 0.9) {
    throw bad('memory', Math.round(memKiB / 1024), `machine ${machine.name} has ${Math.round(memKiB / 1024)} MiB of RAM; nixos-anywhere's kexec installer needs about ${c.minMiB} MiB. Give it more (machines: { role: { profile: '${machine.profile.name}', memoryMiB: ${c.minMiB} } }), or lower minMemoryMiB for a smaller kexec image`);
  }
  // kexec is no reset; the reboot at the end is: the installed system runs on a later boot than this.
  return { identity, user: o.user ?? machine.sshIdentity?.user ?? 'root', bootBefore: (await plain(machine).succeed('cat /proc/sys/kernel/random/boot_id')).trim(), bootsBefore: machine.boots };
}

/**
 * Runs nixos-anywhere as a supervised child and turns its "### … ###" lines into steps, each within its own deadline;
 * resolves with its output once it exits 0. Not getting in (connect, kexec) is an infrastructure error, the target
 * refusing what it was given a test failure; the machine stopping ends it at once.
 */
async function runPhases(machine: Machine, command: string, args: string[], timeouts: Record<AnywhereStep, number>, run: StepRunner, where: string): Promise<string[]> {
  const output: string[] = [];
  /** The phase nixos-anywhere's latest step line began. */
  let marked: AnywhereStep | undefined;
  let wake = () => {};
  const child = spawnSupervised('nixos-anywhere', command, args, {
    processGroup: true,
    onLine: (stream, line) => {
      output.push(line);
      machine.log.note(`nixos-anywhere${stream === 'stderr' ? ' (stderr)' : ''}: ${line}`);
      const m = /^### (.*) ###$/.exec(line.trim());
      const step = m && MARKERS.find(([re]) => re.test(m[1]!))?.[1];
      if (step) {
        marked = step;
        wake();
      }
    },
  });
  const exited = child.exited.then(() => wake());
  const onState = () => wake();
  machine.on('state', onState);
  const tail = () => output.slice(-25).join('\n');

  /** Resolves with the step that began after `current`, or "exit" once nixos-anywhere is done; throws on its failure. */
  const nextBoundary = async (current: AnywhereStep, deadline: Deadline): Promise<AnywhereStep | 'exit'> => {
    for (;;) {
      if (marked && marked !== current) return marked;
      if (!child.running) {
        const exit = child.exitStatus!;
        if (exit.exitCode === 0) return 'exit';
        const msg = `${where}: nixos-anywhere ${exit.signal ? `was killed (${exit.signal})` : `exited ${exit.exitCode}`} in its ${current} phase:\n${tail()}`;
        // Not getting in is the lab's problem; the target refusing what it was given is the system's.
        throw current === 'connect' || current === 'kexec' ? new InfrastructureError(msg, { details: { phase: current, exitCode: exit.exitCode } }) : new TestFailure(msg);
      }
      if (machine.state === 'stopped') throw new InfrastructureError(`${where}: machine ${machine.name} stopped during nixos-anywhere's ${current} phase:\n${machine.log.lastLines(20).join('\n')}`);
      const woke = new Promise<void>((r) => (wake = r));
      const r = await raceDeadline(Promise.race([woke, exited]), deadline);
      if (r.timedOut) {
        const awaited = current === 'kexec' ? 'the machine to come back from kexec into the installer (nixos-anywhere waits forever)' : `nixos-anywhere's ${current} phase to finish`;
        throw new TimeoutError(current === 'kexec' || current === 'reboot' || current === 'connect' ? 'infrastructure' : 'test-failure', {
          awaited,
          deadline,
          machine: machine.name,
          lastLines: machine.log.lastLines(20),
          hint: `nixos-anywhere's last lines:\n${tail()}\nTo allow more time: timeouts: { ${current === 'first boot' ? "'first boot'" : current}: ms }.`,
        });
      }
    }
  };

  try {
    let current: AnywhereStep = 'connect';
    for (;;) {
      const step: AnywhereStep = current;
      const next: AnywhereStep | 'exit' = await run(step, () => nextBoundary(step, Deadline.after(timeouts[step], `nixos-anywhere's ${step} phase`)), { timeout: timeouts[step] + 5_000 });
      if (next === 'exit') break;
      current = next;
    }
  } finally {
    machine.off('state', onState);
    await child.stop(2000).catch(() => undefined);
  }
  return output;
}

/** The installed system's first boot: a reset after nixos-anywhere's reboot, booted from the disk (not the kexec installer), checked. */
async function firstBoot(machine: Machine, before: { bootBefore: string; bootsBefore: number }, deadline: Deadline, expect: { hostname?: string; generation: number }, system: string | undefined, where: string): Promise<Omit<InstallReport, 'output' | 'disk'>> {
  const reset = await pollUntil(() => (machine.boots > before.bootsBefore ? true : undefined), { deadline, intervalMs: 200 });
  if (reset.timedOut) throw new TimeoutError('test-failure', { awaited: 'the machine to reset after nixos-anywhere rebooted it', deadline, machine: machine.name, lastLines: machine.log.lastLines(20) });
  await machine.waitForShell({ deadline });
  await plain(machine).waitUntilSucceeds(`[ -e /run/booted-system ] && ! grep -qw fleetlab.installer=kexec /proc/cmdline && [ "$(cat /proc/sys/kernel/random/boot_id)" != ${before.bootBefore} ]`, { deadline });
  const r = await verifyInstalled(machine, expect, system, where);
  // A reinstalled machine has a new host key: SSH pins the one it has now.
  (await machine.ssh({ expectNewHostKey: true })).close();
  return r;
}

/** `/nix/store/<name>` of a path in a store directory (`<dir>/nix/store/<name>/...`), or the path itself. */
function storePathOf(p: string): string {
  const m = /(\/nix\/store\/[^/]+)/.exec(p);
  return m ? m[1]! : p;
}

function findCommand(cmd: string): string | undefined {
  if (cmd.includes('/')) return existsSync(cmd) ? resolve(cmd) : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  return undefined;
}
