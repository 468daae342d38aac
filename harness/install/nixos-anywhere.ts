// The nixos-anywhere install flow: the real `nixos-anywhere` command (on PATH, or the path a scenario gives) run as a
// supervised child against a running machine over SSH at its sshEndpoint() (a VM's 127.0.0.1 host-link forward, a
// board's lab-file address; the same port after kexec), its "### … ###" phase lines turned into steps with deadlines of their own (nixos-anywhere has none for
// the kexec phase, and a kexec that never comes back is its most reported failure), its output in the case's log,
// and the installed system's first boot checked afterwards. This file knows nixos-anywhere's command line and output,
// nothing of the testbed's stand-in for it.
import { existsSync, realpathSync } from 'node:fs';
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
/**
 * The flow's steps: building (a flake's disko script and system, on this host, before nixos-anywhere reaches the
 * machine), connecting (keys, facts), nixos-anywhere's phases, then the installed system's first boot.
 */
export type AnywhereStep = 'build' | 'connect' | AnywherePhase | 'first boot';

const DEFAULT_MS: Record<AnywhereStep, number> = { build: 1_800_000, connect: 120_000, kexec: 300_000, disko: 180_000, install: 900_000, reboot: 180_000, 'first boot': 300_000 };
/**
 * nixos-anywhere's step lines ("### Switching system into kexec ###") and the step each begins. "Gathering machine
 * facts" is printed before kexec and again once the installer answers: the second one ends the kexec step (what
 * follows it, the disko closure's copy and builds left for after kexec, belongs to the next phase).
 */
const MARKERS: Array<[RegExp, AnywhereStep | 'after kexec']> = [
  [/^Uploading install SSH keys$/, 'connect'],
  [/^Switching system into kexec$/, 'kexec'],
  [/^Gathering machine facts$/, 'after kexec'],
  [/^(Formatting hard drive with disko|Building disko script|Uploading .* to .*)$/, 'disko'],
  [/^(Uploading the system closure|Building the system closure|Copying extra files|Installing NixOS)$/, 'install'],
  [/^Rebooting$/, 'reboot'],
];
/** The step line that says each requested phase ran (kexec's is skipped when the machine already runs an installer). */
const RAN: Partial<Record<AnywherePhase, RegExp>> = {
  disko: /^### (Formatting hard drive with disko) ###$/,
  install: /^### (Installing NixOS) ###$/,
  reboot: /^### (Rebooting) ###$/,
};
/** Flags fleetlab sets itself (or that override --phases): given again in args, they would change what it waits for. */
const OWN_FLAGS = ['--phases', '--no-reboot', '--stop-after-disko', '--vm-test', '-p', '--ssh-port', '-i', '--target-host', '--post-kexec-ssh-port', '--store-paths', '-s', '--flake', '-f', '--kexec'];

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
  /**
   * --kexec <tarball>: the kexec installer image, a file here (a URL the target fetches itself is taken for a board
   * only). A VM needs one: its only network is its host link, from which nixos-anywhere's default download of
   * nixos-images' installer cannot work.
   */
  kexec?: string;
  /** --phases: which of kexec, disko, install, reboot to run. Default all. */
  phases?: AnywherePhase[];
  /**
   * More arguments for nixos-anywhere (--extra-files DIR, --build-on remote, ...); not the flags fleetlab sets itself
   * (--phases, -i, -p, --target-host, --post-kexec-ssh-port, --store-paths, --flake, --kexec) nor those that would
   * override them (--no-reboot, --stop-after-disko, --vm-test). By default fleetlab also passes `--build-on local`
   * with storePaths (nothing is left to build), `--no-substitute-on-destination` on a VM (its installer reaches no
   * substituter), and `--ssh-option LogLevel=ERROR --ssh-option ControlPath=none` (quiet, and no ssh master left
   * behind from your ~/.ssh/config); give the opposite in args to change that.
   */
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
  const checked = checkOptions(machine, o, where);
  const target = await prepareTarget(machine, o, checked, run, where);
  const { host, port } = machine.sshEndpoint();
  const extra = o.args ?? [];
  const has = (...flags: string[]) => extra.some((a) => flags.includes(a));
  const args = [
    ...(o.storePaths ? ['--store-paths', o.storePaths[0], o.storePaths[1]] : ['--flake', o.flake!]),
    ...(o.kexec ? ['--kexec', /^https?:\/\//.test(o.kexec) ? o.kexec : resolve(o.kexec)] : []),
    '--phases', checked.phases.join(','),
    '-i', target.identity,
    '-p', String(port),
    '--post-kexec-ssh-port', String(port),
    // Nothing to build with store paths: without this the real tool asks the host's Nix (nix config show) first.
    ...(o.storePaths && !has('--build-on') ? ['--build-on', 'local'] : []),
    ...(machine.kind === 'vm' && !has('--substitute-on-destination', '--no-substitute-on-destination') ? ['--no-substitute-on-destination'] : []),
    '--ssh-option', 'LogLevel=ERROR',
    '--ssh-option', 'ControlPath=none',
    ...extra,
    '--target-host', `${target.user}@${host}`,
  ];
  const output = await runPhases(machine, checked.command, args, { phases: checked.phases, timeouts: checked.timeouts, build: !!o.flake }, run, where);
  if (!checked.phases.includes('reboot')) return { rebooted: false, output: output.join('\n') };
  // nixos-anywhere resolves its store paths (./result is a link): so does the first-boot check.
  const system = o.system ?? (o.storePaths ? storePathOf(realpathSync(o.storePaths[1])) : undefined);
  const report = await run('first boot', () => firstBoot(machine, target, Deadline.after(checked.timeouts['first boot'], 'the installed system to come up'), { hostname: o.expect?.hostname, generation: o.expect?.generation ?? 1 }, system, where), { timeout: checked.timeouts['first boot'] + 5_000 });
  return { ...report, rebooted: true, output: output.join('\n') };
}

/** The options, checked before anything runs: bad ones are configuration errors naming the option. */
function checkOptions(machine: Machine, o: NixosAnywhereOptions, where: string): { command: string; phases: AnywherePhase[]; timeouts: Record<AnywhereStep, number>; minMiB: number } {
  const bad = badOption(where);
  const command = findCommand(o.command ?? 'nixos-anywhere');
  if (!command) throw bad('command', o.command ?? 'nixos-anywhere', `${o.command ?? 'nixos-anywhere'} is not a file nor on PATH; install nixos-anywhere (nix profile install github:nix-community/nixos-anywhere) or give its path`);
  if (!o.storePaths === !o.flake) throw bad('storePaths', o.storePaths, 'give either storePaths: [disko-script, nixos-system] or flake: "<uri>#<host>"');
  if (o.storePaths) {
    if (!Array.isArray(o.storePaths) || o.storePaths.length !== 2) throw bad('storePaths', o.storePaths, 'expected [disko-script, nixos-system]');
    for (const p of o.storePaths) if (typeof p !== 'string' || !existsSync(p)) throw bad('storePaths', p, `${String(p)} does not exist`);
  }
  if (o.flake !== undefined && !/^[^\s'"]+#[^\s'"]+$/.test(o.flake)) throw bad('flake', o.flake, 'expected a flake output reference, like .#myhost');
  for (const p of o.phases ?? []) if (!(ANYWHERE_PHASES as readonly string[]).includes(p)) throw bad('phases', p, `unknown phase "${p}"; nixos-anywhere's phases are ${ANYWHERE_PHASES.join(', ')}`);
  if (o.kexec !== undefined && /^https?:\/\//.test(o.kexec)) {
    if (machine.kind === 'vm') throw bad('kexec', o.kexec, `machine ${machine.name} is a VM whose only network is its host link: the installer cannot download ${o.kexec}; give the tarball as a file`);
  } else if (o.kexec !== undefined && !existsSync(o.kexec)) throw bad('kexec', o.kexec, `${o.kexec} does not exist`);
  if (o.kexec === undefined && machine.kind === 'vm' && (o.phases ?? ANYWHERE_PHASES).includes('kexec')) {
    throw bad('kexec', undefined, `machine ${machine.name} is a VM whose only network is its host link, so nixos-anywhere's default download of nixos-images' kexec installer cannot work there; give kexec: '<nixos-kexec-installer-*.tar.gz>' (testbed.nixosAnywhere() builds one)`);
  }
  for (const [i, a] of (o.args ?? []).entries()) {
    if (typeof a !== 'string') throw bad('args', a, `args[${i}] must be a string`);
    const flag = a.split('=')[0]!;
    if (OWN_FLAGS.includes(flag)) throw bad('args', a, `${flag} is set by fleetlab (${['--no-reboot', '--stop-after-disko', '--vm-test'].includes(flag) ? 'it would override --phases' : 'from the options'}); use ${flag === '--phases' || flag === '--no-reboot' || flag === '--stop-after-disko' ? 'phases' : flag === '--vm-test' ? 'a NixOS test of your own' : flag === '--kexec' ? 'kexec' : flag === '--store-paths' || flag === '-s' ? 'storePaths' : flag === '--flake' || flag === '-f' ? 'flake' : flag === '-i' ? 'identity' : 'the machine\'s SSH endpoint'} instead`);
  }
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
 * resolves with its output once it exits 0 having said "Done!" and the step line of each requested phase. Not
 * getting in (connect, kexec) is an infrastructure error, the target refusing what it was given (or the build
 * failing) a test failure; the machine stopping ends it at once.
 */
export async function runPhases(machine: Pick<Machine, 'name' | 'log' | 'on' | 'off' | 'state'>, command: string, args: string[], plan: { phases: readonly AnywherePhase[]; timeouts: Record<AnywhereStep, number>; build: boolean }, run: StepRunner, where: string): Promise<string[]> {
  const { phases, timeouts } = plan;
  const output: string[] = [];
  /** The steps nixos-anywhere's step lines began, in order, not yet taken up (lines can come faster than steps end). */
  const marks: AnywhereStep[] = [];
  /** The step its latest step line began. */
  let marked: AnywhereStep | undefined;
  let kexecSeen = false;
  let wake = () => {};
  const child = spawnSupervised('nixos-anywhere', command, args, {
    processGroup: true,
    onLine: (stream, line) => {
      output.push(line);
      machine.log.note(`nixos-anywhere${stream === 'stderr' ? ' (stderr)' : ''}: ${line}`);
      const m = /^### (.*) ###$/.exec(line.trim());
      let step = m && MARKERS.find(([re]) => re.test(m[1]!))?.[1];
      if (step === 'kexec') kexecSeen = true;
      // Facts gathered again after kexec: the installer answered; what comes next is the next requested phase's.
      if (step === 'after kexec') step = kexecSeen && marked === 'kexec' ? (phases.find((p) => p !== 'kexec') ?? 'kexec') : undefined;
      if (step === 'connect' && marked !== undefined && marked !== 'build') step = undefined;
      if (step && step !== marked) {
        marked = step;
        marks.push(step);
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
      while (marks[0] === current) marks.shift();
      if (marks.length) return marks.shift()!;
      if (!child.running) {
        const exit = child.exitStatus!;
        if (exit.exitCode === 0) {
          // Exit 0 is not enough: "Done!" and each requested phase's step line, or it did something else.
          const missing = [...(output.some((l) => l.trim() === '### Done! ###') ? [] : ['"### Done! ###"']), ...phases.filter((p) => RAN[p] && !output.some((l) => RAN[p]!.test(l.trim()))).map((p) => `the ${p} phase's "### ${RAN[p]!.source.slice(5, -6).replace(/[()]/g, '')} ###"`)];
          if (missing.length) throw new TestFailure(`${where}: nixos-anywhere exited 0 without ${missing.join(' and ')} (phases ${phases.join(',')} were asked for): it did not do the install fleetlab asked for:\n${tail()}`, { details: { phase: current } });
          return 'exit';
        }
        const msg = `${where}: nixos-anywhere ${exit.signal ? `was killed (${exit.signal})` : `exited ${exit.exitCode}`} in its ${current} phase:\n${tail()}`;
        // Not getting in is the lab's problem; the target refusing what it was given (or the build failing) is the system's.
        throw current === 'connect' || current === 'kexec' ? new InfrastructureError(msg, { details: { phase: current, exitCode: exit.exitCode } }) : new TestFailure(msg, { details: { phase: current, exitCode: exit.exitCode } });
      }
      if (machine.state === 'stopped') throw new InfrastructureError(`${where}: machine ${machine.name} stopped during nixos-anywhere's ${current} phase:\n${machine.log.lastLines(20).join('\n')}`);
      const woke = new Promise<void>((r) => (wake = r));
      const r = await raceDeadline(Promise.race([woke, exited]), deadline);
      if (r.timedOut) {
        const awaited = current === 'kexec' ? 'the machine to come back from kexec into the installer (nixos-anywhere waits forever)' : current === 'build' ? "nixos-anywhere's build of the flake's disko script and system on this host" : `nixos-anywhere's ${current} phase to finish`;
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
    let current: AnywhereStep = plan.build ? 'build' : 'connect';
    for (;;) {
      const step: AnywhereStep = current;
      const next: AnywhereStep | 'exit' = await run(step, () => nextBoundary(step, Deadline.after(timeouts[step], step === 'build' ? "nixos-anywhere's build" : `nixos-anywhere's ${step} phase`)), { timeout: timeouts[step] + 5_000 });
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
