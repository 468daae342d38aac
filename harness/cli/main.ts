#!/usr/bin/env node
// fleetlab's command line: yargs commands over the runner, reports and providers.
import './self-resolve.ts';
import '../../machines/testbed/register.ts';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { FleetlabError } from '../errors/fleetlab-error.ts';
import { formatDoctor, runDoctor } from '../doctor/doctor.ts';
import { ensureBootDisk } from '../../machines/testbed/boot-disk.ts';
import { ensureInstallerIso, ISO_LAYOUTS } from '../../machines/testbed/installer-iso.ts';
import { ensureTestbed, testbedCached } from '../../machines/testbed/build.ts';
import { listProfiles, loadProfile } from '../qemu/profile-loader.ts';
import type { MachineProfile } from '../qemu/profile.ts';
import { cpus } from 'node:os';
import { testbedRecipes } from '../../machines/testbed/index.ts';
import { consoleCommand } from './console-command.ts';
import { gateCommand } from './gate-command.ts';
import { DEFAULT_POLICY } from '../history/gate.ts';
import { investigateCommand } from './investigate-command.ts';
import { configArgs, loadConfig, type LoadedConfig, useMachinesDirs } from '../config/config.ts';
import { labCommand } from './lab-command.ts';
import { attachCommand } from './attach-command.ts';
import { sshCommand } from './ssh-command.ts';
import { upCommand, type UpArgs } from './up-command.ts';
import { durationMs, type Duration } from '../time/duration.ts';
import { initRepository } from './init-command.ts';
import { PACKAGE_ROOT, VERSION, packageFile } from '../package-files.ts';
import { execa } from 'execa';
import { listCommand, runCommand, type RunArgs } from './run-command.ts';
import { mergeReports } from '../report/merge-report.ts';
import { serveReport } from '../report/serve-report.ts';
import type { Argv } from 'yargs';

/** fleetlab.config.ts's defaults for the commands that take them (run, list, gate), read before their options. */
async function commandConfig(): Promise<LoadedConfig> {
  const argv = hideBin(process.argv);
  const command = argv.find((a, i) => !a.startsWith('-') && !['--config', '--project'].includes(argv[i - 1] ?? ''));
  if (!['run', 'list', 'gate', 'up'].includes(command ?? '')) return { defaults: {} };
  try {
    return await loadConfig(configArgs(argv));
  } catch (err) {
    if (!(err instanceof FleetlabError)) throw err;
    console.error(`fleetlab: ${err.kind} error: ${err.message}`);
    process.exit(2);
  }
}
const config = await commandConfig();
const d = config.defaults;
useMachinesDirs(d);

/** A default from the config only when it sets one (yargs turns default: undefined into a value of an array option). */
function given<T>(v: T | undefined): { default: T } | Record<string, never> {
  return v === undefined ? {} : { default: v };
}

/** --config and --project, for the commands that read fleetlab.config.ts. */
function configOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'The project config (default: fleetlab.config.ts in this folder, when there is one); options given here override it' })
    .option('project', { type: 'string', describe: "One of the config's projects: its settings over the config's own" });
}

/** Options shared by run and list: which cases. Defaults: fleetlab.config.ts's, else fleetlab's. */
function selectionOptions<T>(y: Argv<T>) {
  return configOptions(y)
    .positional('paths', { type: 'string', array: true, default: d.paths ?? ([] as string[]), describe: 'Scenario files or directories (default: scenarios/)' })
    .option('grep', { alias: 'g', type: 'string', ...given(d.grep), describe: 'Only cases whose "name [machine]" or id matches this regular expression' })
    .option('tag', { type: 'string', array: true, ...given(d.tag), describe: 'Only scenarios with one of these tags (repeatable)' })
    .option('machine', { alias: 'm', type: 'string', array: true, ...given(d.machine), describe: 'Run every scenario on this profile instead of its own; repeat for a matrix; "all" for every profile; board:<name> or tag:<tag> for boards of the --lab' })
    .option('shard', { type: 'string', describe: 'Run shard K of N (K/N), split by stable case id' })
    .option('retries', { type: 'number', default: d.retries ?? 0, describe: 'Retry cases that hit an infrastructure error (never test failures) up to N times' })
    .option('repeat-each', { type: 'number', default: d.repeatEach ?? 1, describe: 'Run each case N times (ids end in #1..#N), and report each case\'s pass rate: for flaky cases' })
    .option('reporter', { type: 'string', array: true, default: d.reporter ?? ['console', 'junit', 'json', 'html'], describe: 'Reporters: console, junit, json, html (several at once)' })
    .option('timeout-scale', { type: 'number', default: d.timeoutScale ?? 1, describe: 'Multiply every timeout (slow TCG hosts, real boards)' })
    .option('lab', { type: 'string', ...given(d.lab), describe: 'A lab inventory (lab/*.ts): --machine board:<name> or tag:<tag> then runs on its boards' })
    .option('lab-db', { type: 'string', ...given(d.labDb), describe: "Where the lab's leases are: a SQLite file (default: one per lab in ~/.local/state/fleetlab) or postgres://…" });
}

/**
 * Builds the testbed images `names` and the boot disks of the profiles that use them, printing where they are: as many
 * testbeds at once as the host has cores (each testbed's disks and media after it), every line prefixed with its name.
 */
async function buildImages(names: string[], rebuild = false): Promise<void> {
  const profiles = await Promise.all(listProfiles().map((name) => loadProfile(name)));
  for (const n of names) if (!testbedRecipes[n]) throw new FleetlabError('configuration', `unknown testbed "${n}"; have: ${Object.keys(testbedRecipes).join(', ')}`);
  const cached = rebuild ? [] : (await Promise.all(names.map(async (n) => ((await testbedCached(testbedRecipes[n]!)) ? n : undefined)))).filter((n) => n !== undefined);
  const missing = names.filter((n) => !cached.includes(n));
  if (missing.length) console.error(`images: building ${missing.join(', ')} (${Math.min(cpus().length, names.length)} at a time); cached: ${cached.join(', ') || 'none'}`);
  const queue = [...missing, ...cached];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(cpus().length, names.length)) }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) await buildTestbed(n, profiles, rebuild);
    }),
  );
  console.error(`images: ${names.length} testbed${names.length === 1 ? '' : 's'} ready in ${Math.round((performance.now() - t0) / 1000)} s`);
}

async function buildTestbed(n: string, profiles: MachineProfile[], rebuild: boolean): Promise<void> {
  const recipe = testbedRecipes[n]!;
  const log = (l: string) => console.error(`${n}: ${l}`);
  const img = await ensureTestbed(recipe, { rebuild, log });
  console.log(`${n}: ${img.dir}`);
  for (const { name, boot } of profiles) {
    if (boot.kind !== 'testbed-disk' || boot.image !== n) continue;
    const disk = await ensureBootDisk(img, boot.layout, boot.append, { log });
    console.log(`${n} ${boot.layout} (${name}): ${disk.path}`);
    // The install media for the profile: its installer ISO or its SD image (testbed.installerIso / sdImage).
    if ((ISO_LAYOUTS as readonly string[]).includes(boot.layout) && recipe.debArch === 'amd64') {
      const iso = await ensureInstallerIso(img, boot.layout, boot.append, { log });
      console.log(`${n} ${boot.layout} installer ISO (${name}): ${iso.path}`);
    }
    if (boot.layout === 'extlinux' || boot.layout === 'raspi-uboot') {
      const sd = await ensureBootDisk(img, boot.layout, boot.append, { sdImage: true, log });
      console.log(`${n} ${boot.layout} SD image (${name}): ${sd.path}`);
    }
  }
}

/** Exit codes: 0 passed, 1 test failure, 2 configuration or usage error, 3 infrastructure error, 130 interrupted. */
export const EXIT = { ok: 0, testFailure: 1, usage: 2, infrastructure: 3, interrupted: 130 } as const;

await yargs(hideBin(process.argv))
  .scriptName('fleetlab')
  .usage('$0 <command> [options]\n\nVM test harness and hardware-in-the-loop lab runner for NixOS device fleets.')
  .command(
    'doctor',
    'Report what this host can do: QEMU per architecture, firmware, tools, and acceleration probed for real',
    (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' }).option('refresh', { type: 'boolean', default: false, describe: 'Probe acceleration again instead of using the cached answer' }),
    async (argv) => {
      const report = await runDoctor({ refresh: argv.refresh });
      console.log(argv.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      process.exitCode = report.problems.length ? 1 : 0;
    },
  )
  .command(
    'setup',
    "Set this host up: the Debian packages fleetlab uses (apt, as root or through sudo) and the testbed images (cached); idempotent, quick when all is there",
    (y) => y.option('images', { type: 'boolean', default: true, describe: 'Also build the testbed images (--no-images: packages only; images are then built on first use)' }),
    async (argv) => {
      const script = packageFile('scripts/setup.sh');
      if (!script) throw new FleetlabError('infrastructure', `this fleetlab has no scripts/setup.sh (looked in ${PACKAGE_ROOT}); reinstall the package`);
      const r = await execa('bash', [script, '--host'], { stdio: 'inherit', reject: false });
      if (r.exitCode !== 0) throw new FleetlabError('infrastructure', `host setup (${script} --host) exited ${r.exitCode}; see its message above`);
      if (argv.images) await buildImages(Object.keys(testbedRecipes));
      console.log('fleetlab: the host is set up; "fleetlab doctor" shows what it can do');
    },
  )
  .command(
    'init [dir]',
    "Start a fleet repository's fleetlab files: scenarios/smoke.ts, machines/my-device.ts (a profile extending a built-in one), CI jobs for GitHub Actions and GitLab; existing files are kept",
    (y) =>
      y
        .positional('dir', { type: 'string', default: '.', describe: 'The repository (default: the current directory)' })
        .option('force', { type: 'boolean', default: false, describe: 'Overwrite files that exist' }),
    async (argv) => {
      const r = await initRepository(argv.dir, { force: argv.force });
      for (const f of r.written) console.log(`wrote ${f}`);
      for (const f of r.kept) console.log(`kept  ${f} (exists; --force overwrites)`);
      console.log('next: npx fleetlab setup, then npx fleetlab run scenarios/smoke.ts');
    },
  )
  .command(
    'run [paths..]',
    'Run scenarios; write junit.xml, report.json and console logs under reports/<run-id>/',
    (y) =>
      selectionOptions(y)
        .option('workers', { alias: 'j', type: 'number', ...given(d.workers), describe: 'Cases run at once (default: what the host\'s cores and memory allow)' })
        .option('output', { alias: 'o', type: 'string', ...given(d.output), describe: 'Output directory (default: reports/<run-id>/, with reports/latest pointing at it)' })
        .option('pause-on-failure', { type: 'boolean', default: false, describe: 'Pause a failed case before its machines go: the REPL with them bound (or, without a terminal, fleetlab attach); fleetlab console/ssh reach them' })
        .option('debug', { type: 'boolean', default: false, describe: 'Pause each case before its first step and on failure (the REPL: .continue resumes, .abort fails the case)' })
        .option('pause-timeout', { type: 'string', default: d.pauseTimeout ?? '15m', describe: 'Without a terminal, how long a pause waits for fleetlab attach before the case goes on' })
        .option('accel', { type: 'string', choices: ['auto', 'kvm', 'tcg', 'hvf'], ...given(d.accel), describe: 'Accelerator for every machine (default: each profile\'s, usually auto)' })
        .option('warm', { type: 'boolean', default: d.warm ?? false, describe: 'Warm starts: the first machine of each shape boots and is saved; later ones restore that snapshot (a scenario\'s snapshot option overrides)' })
        .option('checkpoints', { type: 'boolean', default: d.checkpoints ?? true, describe: 'Setup checkpoints: a scenario\'s setup steps run once and are saved; later cases restore them (--no-checkpoints: every case runs them)' })
        .option('keep-snapshots', { type: 'string', ...given(d.keepSnapshots), describe: 'Keep the run\'s snapshots and checkpoints in this directory and reuse them in later runs (default: removed at the end of the run)' })
        .option('image', { type: 'string', describe: 'Boot this disk image or ISO on every machine instead of its profile\'s boot (written through a qcow2 overlay, never itself)' })
        .option('kernel', { type: 'string', describe: 'Boot this kernel directly on every machine (with --image as its disk, if given)' })
        .option('initrd', { type: 'string', describe: 'Initrd for --kernel' })
        .option('dtb', { type: 'string', describe: 'Device tree for --kernel (Arm)' })
        .option('append', { type: 'string', describe: 'Kernel command line: for --kernel, or added to a testbed profile\'s' })
        .option('history', { type: 'string', ...given(d.history), describe: 'Record the run in this history: a SQLite file, postgres://…, or none (default: $FLEETLAB_HISTORY, else reports/history.sqlite)' })
        .option('known-failures', { type: 'string', ...given(d.knownFailures), describe: 'Classify failures with this known-failures file (default: known-failures.json, when there is one)' })
        .option('input', { type: 'string', array: true, describe: 'NAME=VALUE given to every case as ctx.inputs.NAME (the build under test, a version); kept in the history, in JUnit and report.json (repeatable)' }),
    async (argv) => {
      process.exitCode = await runCommand({ ...(argv as unknown as RunArgs), configInputs: d.inputs, configFile: config.file, project: config.project });
    },
  )
  .command(
    'list [paths..]',
    'List the scenario × machine cases a run would have',
    (y) => selectionOptions(y),
    async (argv) => {
      process.exitCode = await listCommand(argv as unknown as RunArgs);
    },
  )
  .command(
    'console <machine>',
    'Attach this terminal to the serial console of a machine of a paused case or a fleetlab up session (Ctrl-] detaches)',
    (y) => y.positional('machine', { type: 'string', demandOption: true }).option('session', { alias: 'report', type: 'string', describe: 'The session (a run id, its start, or its output folder) when several have the machine' }),
    async (argv) => {
      process.exitCode = await consoleCommand(argv.machine, argv.session);
    },
  )
  .command(
    'up <target>',
    'Start machines and open a REPL with them bound: --count N of a profile (vm1..vmN) or a scenario file\'s machines (its body not run), on --net LANs, with SSH forwards, warm where a snapshot of their shape is cached; Ctrl-D stops them all',
    (y) =>
      configOptions(y)
        .positional('target', { type: 'string', demandOption: true, describe: 'A profile name (or profile file), or a scenario file' })
        .option('count', { alias: 'n', type: 'number', describe: 'How many machines of the profile (default 1)' })
        .option('net', { type: 'string', array: true, describe: 'A switched LAN of all the machines, by this name (repeatable): machines[1].address(\'lan\')' })
        .option('name', { type: 'string', default: 'vm', describe: 'The machines\' names (and hostnames): NAME1..NAMEN' })
        .option('grep', { alias: 'g', type: 'string', describe: 'For a scenario file: the case whose "name [machine]" matches' })
        .option('ssh', { type: 'boolean', default: true, describe: 'SSH forwards (fleetlab ssh, machine.ssh()); --no-ssh: none' })
        .option('warm', { type: 'boolean', default: true, describe: 'Restore from a snapshot of each machine\'s shape, kept in the cache by the first up of that shape (--no-warm: always boot)' })
        .option('accel', { type: 'string', choices: ['auto', 'kvm', 'tcg', 'hvf'], describe: 'Accelerator (default: each profile\'s)' })
        .option('output', { alias: 'o', type: 'string', describe: 'Where the consoles\' logs and captures go (default: reports/up-<time>/)' })
        .option('boot-timeout', { type: 'string', default: '10m', describe: 'How long the machines may take to come up' }),
    async (argv) => {
      process.exitCode = await upCommand({ target: argv.target, count: argv.count, net: argv.net, name: argv.name, grep: argv.grep, ssh: argv.ssh, warm: argv.warm, accel: argv.accel as UpArgs['accel'], output: argv.output, bootTimeoutMs: durationMs(argv.bootTimeout as Duration, '--boot-timeout') });
    },
  )
  .command(
    'attach [session]',
    'Attach this terminal to the REPL of a paused run (ctx.pause, --debug, --pause-on-failure) or a fleetlab up session: a run id, its start, or its output folder; none: the only one',
    (y) => y.positional('session', { type: 'string' }),
    async (argv) => {
      process.exitCode = await attachCommand(argv.session);
    },
  )
  .command(
    'ssh <machine> [command..]',
    'OpenSSH into a machine of a paused case or a fleetlab up session, with the key and host key fleetlab knows (the case needs ssh: true)',
    (y) => y.positional('machine', { type: 'string', demandOption: true }).positional('command', { type: 'string', array: true, default: [] as string[] }).option('session', { type: 'string', describe: 'The session, when several have the machine' }),
    async (argv) => {
      // What follows -- is yargs' argv._ after the command's name.
      process.exitCode = await sshCommand(argv.machine, [...argv.command, ...argv._.slice(1).map(String)], argv.session);
    },
  )
  .command('report', "Reports: serve a run's folder, or merge shards' JUnit", (y) =>
    y
      .command(
        'show [dir]',
        "Serve a run's folder on 127.0.0.1 and print the URL of its report.html (until Ctrl-C)",
        (yy) => yy.positional('dir', { type: 'string', default: 'reports/latest', describe: "The run's output folder" }).option('port', { type: 'number', default: 0, describe: 'Port on 127.0.0.1 (default: a free one)' }),
        async (argv) => {
          const { server, url } = await serveReport(argv.dir, argv.port);
          console.log(url);
          await new Promise<void>((done) => {
            const stop = () => server.close(() => done());
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
          });
        },
      )
      .command(
        'merge <inputs..>',
        "Merge shards (run folders, or their junit.xml files) into one junit.xml, with report.json and report.html beside it",
        (yy) =>
          yy
            .positional('inputs', { type: 'string', array: true, demandOption: true, describe: 'The shards: reports/<run-id> folders or junit.xml files' })
            .option('o', { alias: 'output', type: 'string', demandOption: true, describe: 'The merged junit.xml; report.html and report.json go into its folder' })
            .option('history', { type: 'string', describe: "Record the merged run in this history, the shards' own runs removed: a SQLite file, postgres://… or none (default: $FLEETLAB_HISTORY, else reports/history.sqlite)" }),
        async (argv) => {
          const r = await mergeReports(argv.inputs as string[], argv.o, { history: argv.history });
          console.log(`merged ${r.suites} suites, ${r.tests} tests into ${argv.o}`);
          console.log(r.html ? `report: ${r.html}` : `report.html not merged: ${r.htmlSkipped}`);
          if (r.history) console.log(`recorded as one run in the history ${r.history}`);
        },
      )
      .demandCommand(1, 'report needs a subcommand: show or merge'),
  )
  .command(
    'gate',
    'Judge the latest run against the history: new, still-failing, flaky and known failures; exits 1 when the policy finds something fatal',
    (y) =>
      configOptions(y)
        .option('history', { type: 'string', ...given(d.history), describe: 'The run history: a SQLite file or postgres://… (default: $FLEETLAB_HISTORY, else reports/history.sqlite)' })
        .option('known-failures', { type: 'string', ...given(d.knownFailures), describe: 'The known-failures file (default: known-failures.json, when there is one)' })
        .option('run', { type: 'string', describe: 'Judge this run id instead of the latest' })
        .option('fail-on', { type: 'string', array: true, default: d.gate?.failOn ?? DEFAULT_POLICY.failOn, describe: 'Failure classes that fail the gate: new, still-failing, flaky, known, known-expired' })
        .option('max-infra-errors', { type: 'number', default: d.gate?.maxInfraErrors ?? DEFAULT_POLICY.maxInfrastructureErrors, describe: 'Infrastructure errors tolerated' })
        .option('window', { type: 'number', default: d.gate?.window ?? DEFAULT_POLICY.window, describe: 'Earlier runs to compare with' })
        .option('json', { type: 'boolean', default: false, describe: 'Print the verdict as JSON' }),
    async (argv) => {
      process.exitCode = await gateCommand({ history: argv.history, knownFailures: argv['known-failures'], run: argv.run, failOn: argv['fail-on'], maxInfraErrors: argv['max-infra-errors'], window: argv.window, json: argv.json });
    },
  )
  .command(
    'investigate <case>',
    "A case's last passing run and the first failing one after it, from the history, and what differs: inputs, commits and the scenario code's git log, each machine's profile, image and NixOS system, the closure diff; --rerun names the side the failure follows",
    (y) =>
      y
        .positional('case', { type: 'string', demandOption: true, describe: 'The case: its id (scenarios/smoke.ts::smoke[x86_64-direct]) or a part of it that names one' })
        .option('history', { type: 'string', describe: 'The run history: a SQLite file or postgres://… (default: $FLEETLAB_HISTORY, else reports/history.sqlite)' })
        .option('window', { type: 'number', default: 100, describe: 'Runs to look through, newest first' })
        .option('rerun', { type: 'boolean', default: false, describe: "Run the case twice more: the last good run's inputs with the first bad run's scenario code, and the other way round (git worktrees); say which side the failure follows" })
        .option('output', { alias: 'o', type: 'string', describe: "The reruns' report folder (default: reports/investigate-<time>)" })
        .option('json', { type: 'boolean', default: false, describe: 'Print the investigation as JSON' }),
    async (argv) => {
      process.exitCode = await investigateCommand({ case: argv.case as string, history: argv.history, window: argv.window, json: argv.json, rerun: argv.rerun, output: argv.output });
    },
  )
  .command('lab', "A lab's boards (--lab): status, reserve, release, acquire, power, console, check", labCommand)
  .command('images', 'Testbed images: build them, or print where one file of them is', (y) =>
    y
      .command(
        'build [names..]',
        'Build the testbed guest images from Debian packages, the boot disks of the profiles that use them and their install media (installer ISOs, SD images), cached by a hash of their inputs',
        (y) =>
          y
            .positional('names', { type: 'string', array: true, describe: `Testbeds to build (default: all: ${Object.keys(testbedRecipes).join(', ')})` })
            .option('rebuild', { type: 'boolean', default: false, describe: 'Build even if the cache has the image' }),
        async (argv) => {
          await buildImages(argv.names?.length ? argv.names : Object.keys(testbedRecipes), argv.rebuild);
        },
      )
      .command(
        'path <name> <file>',
        'Print the path of one file of a built testbed (building it if needed): kernel, initrd, rootfs (ext4, label nixos), kernel-image',
        (y) =>
          y
            .positional('name', { type: 'string', demandOption: true, describe: `Testbed: ${Object.keys(testbedRecipes).join(', ')}` })
            .positional('file', { type: 'string', demandOption: true, choices: ['kernel', 'initrd', 'rootfs', 'kernel-image'] }),
        async (argv) => {
          const recipe = testbedRecipes[argv.name];
          if (!recipe) throw new FleetlabError('configuration', `unknown testbed "${argv.name}"; have: ${Object.keys(testbedRecipes).join(', ')}`);
          const img = await ensureTestbed(recipe, { log: (l) => console.error(l) });
          const files: Record<string, string | undefined> = { kernel: img.kernel, initrd: img.initrd, rootfs: img.rootfs, 'kernel-image': img.kernelImage };
          console.log(files[argv.file]);
        },
      )
      .demandCommand(1, 'Name an images command: build or path.'),
  )
  .demandCommand(1, 'Name a command; see fleetlab --help.')
  .strict()
  .fail((msg, err) => {
    if (err) throw err;
    console.error(`${msg}\n\nRun "fleetlab --help" for usage.`);
    process.exit(EXIT.usage);
  })
  .version(VERSION)
  .help()
  .parseAsync()
  .catch((err: unknown) => {
    if (err instanceof FleetlabError) {
      console.error(`fleetlab: ${err.kind} error: ${err.message}`);
      process.exit(err.kind === 'configuration' ? EXIT.usage : err.kind === 'infrastructure' ? EXIT.infrastructure : EXIT.testFailure);
    }
    console.error(err);
    process.exit(EXIT.infrastructure);
  });
