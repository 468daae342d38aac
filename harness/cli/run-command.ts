// `fleetlab run`: options normalised once, cases planned before anything boots, reports written whatever happens.
import { HistoryReporter } from '../history/history-reporter.ts';
import { historyLocation } from '../history/open-history.ts';
import { loadDefaultKnownFailures } from '../history/known-failures.ts';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { killAllChildrenSync } from '../process/supervisor.ts';
import { Pauses } from '../debug/pauses.ts';
import { durationMs, type Duration } from '../time/duration.ts';
import { ConsoleReporter } from '../report/console-reporter.ts';
import { JsonReporter } from '../report/json-reporter.ts';
import { HtmlReporter } from '../report/html-reporter.ts';
import { JunitReporter, junitPath } from '../report/junit-reporter.ts';
import { ReporterMux, type Reporter } from '../report/reporter.ts';
import { admitMemory } from '../runner/memory-budget.ts';
import { planRun, type PlanOptions, startsWarm } from '../runner/plan.ts';
import { defaultWorkers, runPlan } from '../runner/runner.ts';
import { prepareImages } from '../runner/prepare-images.ts';
import { setTimeoutScale } from '../time/deadline.ts';
import { LabSession } from '../../lab/lab-session.ts';

/** The options of `fleetlab run` as yargs parsed them. */
export interface RunArgs {
  paths: string[];
  grep?: string;
  tag?: string[];
  machine?: string[];
  workers?: number;
  retries: number;
  repeatEach?: number;
  shard?: string;
  reporter: string[];
  output?: string;
  timeoutScale: number;
  pauseOnFailure: boolean;
  /** --debug: pause before each case's first step and on failure. */
  debug: boolean;
  /** --pause-timeout: how long a pause without a terminal waits for `fleetlab attach`. */
  pauseTimeout?: string;
  warm?: boolean;
  keepSnapshots?: string;
  checkpoints?: boolean;
  accel?: 'auto' | 'kvm' | 'tcg' | 'hvf';
  image?: string;
  kernel?: string;
  initrd?: string;
  dtb?: string;
  append?: string;
  lab?: string;
  labDb?: string;
  /** Where the run is recorded: a SQLite file, postgres://…, or "none" (default: historyLocation()). */
  history?: string;
  /** The known-failures file its failures are classified with (default: known-failures.json, when there is one). */
  knownFailures?: string;
  /** --input NAME=VALUE, as given. */
  input?: string[];
  /** fleetlab.config.ts's inputs (its project's over its own), under --input's. */
  configInputs?: Record<string, string>;
  /** The config file and project the defaults came from, for report.json. */
  configFile?: string;
  project?: string;
}

const REPORTERS = ['console', 'junit', 'json', 'html'];

/** The exit code of a run ended by a signal: 130 for SIGINT, 143 for SIGTERM. */
function signalExitCode(sig: NodeJS.Signals): number {
  return sig === 'SIGINT' ? 130 : 143;
}

/** Checks the options; a configuration error names the option, its value and what is expected. */
export function normaliseRunArgs(a: RunArgs): RunArgs {
  const bad = (opt: string, value: unknown, expected: string) => new ConfigurationError(`--${opt} ${JSON.stringify(value)}: ${expected}.`, { details: { field: opt, value } });
  if (a.workers !== undefined && !(Number.isInteger(a.workers) && a.workers >= 1)) throw bad('workers', a.workers, 'expected a whole number >= 1');
  if (!(Number.isInteger(a.retries) && a.retries >= 0)) throw bad('retries', a.retries, 'expected a whole number >= 0');
  if (a.repeatEach !== undefined && !(Number.isInteger(a.repeatEach) && a.repeatEach >= 1)) throw bad('repeat-each', a.repeatEach, 'expected a whole number >= 1 (runs of each case)');
  if (!(Number.isFinite(a.timeoutScale) && a.timeoutScale > 0)) throw bad('timeout-scale', a.timeoutScale, 'expected a positive number, e.g. 2 for a slow host');
  const reporters = a.reporter.flatMap((r) => r.split(',')).map((r) => r.trim()).filter(Boolean);
  for (const r of reporters) if (!REPORTERS.includes(r)) throw bad('reporter', r, `expected one of ${REPORTERS.join(', ')}`);
  if (a.accel !== undefined && !['auto', 'kvm', 'tcg', 'hvf'].includes(a.accel)) throw bad('accel', a.accel, 'expected auto, kvm, tcg or hvf');
  for (const opt of ['image', 'kernel', 'initrd', 'dtb'] as const) {
    const v = a[opt];
    if (v !== undefined && !existsSync(resolve(v))) throw bad(opt, v, 'no such file');
  }
  runInputs(a.input, a.configInputs);
  durationMs((a.pauseTimeout ?? '15m') as Duration, '--pause-timeout');
  return { ...a, reporter: reporters.length ? reporters : REPORTERS };
}

/** --input NAME=VALUE options as ctx.inputs; a malformed or repeated one is a configuration error naming it. */
export function runInputs(given: string[] | undefined, fromConfig: Record<string, string> = {}): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const g of given ?? []) {
    const m = /^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$/s.exec(g);
    if (!m) throw new ConfigurationError(`--input ${JSON.stringify(g)}: expected NAME=VALUE (NAME: a letter or _, then letters, digits, _ . -).`, { details: { field: 'input', value: g } });
    if (m[1]! in inputs) throw new ConfigurationError(`--input ${m[1]} is given twice (${JSON.stringify(inputs[m[1]!])} and ${JSON.stringify(m[2])}): give it once.`, { details: { field: 'input', value: g } });
    inputs[m[1]!] = m[2]!;
  }
  return { ...fromConfig, ...inputs };
}

function planOptions(a: RunArgs, lab?: LabSession): PlanOptions {
  return { paths: a.paths, grep: a.grep, tags: a.tag, machines: a.machine, shard: a.shard, repeatEach: a.repeatEach, boot: { image: a.image, kernel: a.kernel, initrd: a.initrd, dtb: a.dtb, append: a.append }, lab };
}

/** The run's lab (--lab), its leases in --lab-db; provisioned only for a run that uses its boards. */
async function openLab(a: RunArgs, run: string | undefined): Promise<LabSession | undefined> {
  if (!a.lab) {
    if (a.labDb) throw new ConfigurationError('--lab-db names where a lab\'s leases are: give the lab too (--lab <lab file>)');
    return undefined;
  }
  return LabSession.open(a.lab, { db: a.labDb, run, provision: run !== undefined });
}

/** `fleetlab list`: the scenario × machine cases a run would have. */
export async function listCommand(a: RunArgs): Promise<number> {
  const lab = await openLab(a, undefined);
  const cases = await planRun(planOptions(normaliseRunArgs(a), lab)).finally(() => lab?.close());
  for (const c of cases) console.log(c.id);
  console.error(`${cases.length} case${cases.length === 1 ? '' : 's'}`);
  return 0;
}

/** `fleetlab run`: returns the exit code. */
export async function runCommand(raw: RunArgs): Promise<number> {
  const a = normaliseRunArgs(raw);
  setTimeoutScale(a.timeoutScale);
  const runId = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(2).toString('hex')}`;
  const lab = await openLab(a, runId);
  try {
    return await runWith(a, runId, lab);
  } finally {
    await lab?.close();
  }
}

async function runWith(a: RunArgs, runId: string, lab: LabSession | undefined): Promise<number> {
  const cases = await planRun(planOptions(a, lab));
  // A shard that no case falls in is not an error when others have cases (CI runs every shard): it reports none.
  const inAll = !cases.length && a.shard ? (await planRun({ ...planOptions(a, lab), shard: undefined })).length : 0;
  if (inAll) process.stderr.write(`fleetlab: shard ${a.shard} has none of the ${inAll} case(s) planned; it reports no test\n`);
  else if (!cases.length) throw new ConfigurationError(`No scenario matched (paths: ${a.paths.join(' ') || 'scenarios'}${a.grep ? `, --grep ${a.grep}` : ''}${a.tag?.length ? `, --tag ${a.tag.join(',')}` : ''}${a.shard ? `, --shard ${a.shard}` : ''}).`);
  admitMemory(cases, (c) => startsWarm(c, a.warm));
  const outputDir = resolve(a.output ?? join('reports', runId));
  mkdirSync(outputDir, { recursive: true });
  if (!a.output) pointLatest(outputDir);

  const junit = new JunitReporter(junitPath(outputDir));
  // The history first: it marks each result with its failure's class before the others report it.
  const reporters: Reporter[] = [new HistoryReporter(historyLocation(a.history), loadDefaultKnownFailures(a.knownFailures))];
  if (a.reporter.includes('console')) reporters.push(new ConsoleReporter());
  if (a.reporter.includes('junit')) reporters.push(junit);
  if (a.reporter.includes('json')) reporters.push(new JsonReporter(join(outputDir, 'report.json')));
  if (a.reporter.includes('html')) reporters.push(new HtmlReporter(join(outputDir, 'report.html'), outputDir));

  const mux = new ReporterMux(reporters);

  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      // A second signal: no more waiting.
      killAllChildrenSync();
      process.exit(signalExitCode(sig));
    }
    signalled = sig;
    process.stderr.write(`\nfleetlab: ${sig}: stopping; running cases are recorded as interrupted\n`);
    controller.abort(`received ${sig}`);
    if (a.reporter.includes('junit')) void junit.writeInterrupted(`received ${sig}`);
    // Unwinding stops machines gracefully; if that hangs, kill them and leave.
    setTimeout(() => {
      killAllChildrenSync();
      process.exit(signalExitCode(sig));
    }, 20_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // The images the cases boot, built now with a line per step (on the console reporter's stream), not in a case's start.
  const say = a.reporter.includes('console') ? process.stdout : process.stderr;
  await prepareImages(cases, { write: (line) => say.write(`${line}\n`) });
  const workers = a.workers ?? defaultWorkers(cases, a.warm);
  // Pauses: on a terminal ctx.pause() always pauses; without one only under --debug or --pause-on-failure.
  const interactive = !!process.stdin.isTTY && !!process.stdout.isTTY;
  const pauses = a.debug || a.pauseOnFailure || interactive ? new Pauses({ runId, outputDir, debug: a.debug, pauseOnFailure: a.pauseOnFailure, interactive, timeoutMs: durationMs((a.pauseTimeout ?? '15m') as Duration, '--pause-timeout'), say: (line) => process.stdout.write(`${line}\n`) }) : undefined;
  const summary = await runPlan(cases, { runId, outputDir, workers, retries: a.retries, pauses, accel: a.accel, signal: controller.signal, warm: a.warm, checkpoints: a.checkpoints, keepSnapshots: a.keepSnapshots, boards: lab, recordSystems: historyLocation(a.history) !== 'none', inputs: runInputs(a.input, a.configInputs), options: runOptionsSeen(a, workers) }, mux);
  await mux.emit('onRunEnd', summary);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // SIGINT's 130 comes from the summary (the run was interrupted).
  if (signalled === 'SIGTERM') return signalExitCode(signalled);
  return summary.exitCode;
}

/** The options a run ran with, wherever they came from (report.json's run.options). */
function runOptionsSeen(a: RunArgs, workers: number): Record<string, unknown> {
  const o = { config: a.configFile, project: a.project, paths: a.paths, grep: a.grep, tag: a.tag, machine: a.machine, shard: a.shard, workers, retries: a.retries, repeatEach: a.repeatEach, reporter: a.reporter, timeoutScale: a.timeoutScale, accel: a.accel, warm: a.warm, checkpoints: a.checkpoints, keepSnapshots: a.keepSnapshots, lab: a.lab, history: historyLocation(a.history), knownFailures: a.knownFailures };
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** reports/latest -> this run. */
function pointLatest(outputDir: string): void {
  const latest = join(resolve(outputDir, '..'), 'latest');
  try {
    rmSync(latest, { force: true });
    symlinkSync(basename(outputDir), latest);
  } catch {
    /* a report still works without the link */
  }
}
