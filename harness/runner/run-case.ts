// Runs one try of one case: acquires its machines from their providers and starts them in parallel, runs the body
// with steps and deadlines, and gives everything back. The pieces: case-machines.ts (acquire, start, release),
// steps.ts (the step tree), and here the scenario context and the try's outcome.
import { durationMs } from '../time/duration.ts';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CaseBrowser } from '../browser/browser.ts';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import { installFlows } from '../install/flows.ts';
import { Fabric } from '../net/fabric.ts';
import { fabricHandle } from '../net/fabric-handle.ts';
import { networkPictures } from '../net/network-picture.ts';
import type { Machine, ManagedMachine } from '../protocols/machine.ts';
import type { QemuProvider } from '../qemu/qemu-provider.ts';
import type { SnapshotStore } from '../qemu/warm-start.ts';
import type { ReporterMux } from '../report/reporter.ts';
import { currentDeadline, Deadline, now, withDeadline } from '../time/deadline.ts';
import type { Pauses } from '../debug/pauses.ts';
import type { BoardProvider } from './boards.ts';
import { startAtCheckpoint } from './checkpoints.ts';
import { collectEvidence } from './evidence.ts';
import { systemOf } from './system-identity.ts';
import { bodyMachines, machineNames } from './fleets.ts';
import { acquireMachines, releaseMachines, startFleetHeld, startMachines, type CaseMachines } from './case-machines.ts';
import { errorInfo } from './error-info.ts';
import { Invariants } from './invariants.ts';
import { bindable } from '../debug/repl.ts';
import { formatMs } from '../time/format.ts';
import { MemoryPeak } from '../process/usage.ts';
import type { PlannedCase } from './plan.ts';
import type { AttemptResult, ErrorInfo } from './results.ts';
import type { ScenarioContext } from './scenario.ts';
import { SkipSignal, stepRunner, within } from './steps.ts';

const DEFAULT_SCENARIO_TIMEOUT = 10 * 60_000;

/** Options of one try. */
export interface RunCaseOptions {
  attempt: number;
  outputDir: string;
  reporters: ReporterMux;
  /** Aborted when the run is interrupted. */
  signal: AbortSignal;
  /** The run's pauses (ctx.pause, --debug, --pause-on-failure); none: ctx.pause() only logs that it did not pause. */
  pauses?: Pauses;
  /** Where the case's VMs come from. */
  qemu: QemuProvider;
  /** Warm starts: machines are restored from (or make) snapshots in this store. */
  snapshots?: SnapshotStore;
  /** This case's place in the run, for deciding warm starts in plan order. */
  warmTurn?: number;
  /** The lab, for cases on boards (--lab). */
  boards?: BoardProvider;
  /** Where setup checkpoints are found and saved; none: --no-checkpoints. */
  checkpoints?: SnapshotStore;
  /** Read each machine's system at the case's end (a history records the run): system-identity.ts. */
  recordSystems?: boolean;
  /** The run's inputs: ctx.inputs. */
  inputs?: Record<string, string>;
}

/** The try's result. */
export async function runCase(c: PlannedCase, opts: RunCaseOptions): Promise<AttemptResult> {
  const started = now();
  const slug = c.id.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');
  const logDir = resolve(opts.outputDir, 'machines', slug, `try-${opts.attempt}`);
  await mkdir(logDir, { recursive: true });
  const result: AttemptResult = { attempt: opts.attempt, status: 'passed', startedAt: new Date().toISOString(), durationMs: 0, steps: [], machines: [], artifacts: [], output: [] };
  const output = (line: string) => result.output.push(line);
  const event = (line: string) => output(`[${new Date().toISOString()}] ${line}`);

  if (c.scenario.skip) return skipped(result, typeof c.scenario.skip === 'string' ? c.scenario.skip : 'marked skip');

  const deadline = Deadline.after(c.scenario.timeout === undefined ? DEFAULT_SCENARIO_TIMEOUT : durationMs(c.scenario.timeout, 'timeout'), `scenario "${c.scenario.name}"`, { hint: "raise the scenario's timeout, or pass --timeout-scale" });
  const caseAbort = new AbortController();
  const onRunAbort = () => caseAbort.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onRunAbort, { once: true });

  // The case's networks (made once its boards are leased): a switch helper, ports per machine, captures in the case's
  // log folder. A switch that dies cuts its machines off: the case ends at once as an infrastructure error naming them.
  let fabric: Fabric | undefined;
  const networks = () => (fabric ??= c.scenario.networks ? new Fabric(c.scenario.networks, { pcapDir: logDir, onEvent: event, onSwitchExit: (err) => caseAbort.abort(err) }) : undefined);
  const died: string[] = [];
  let cm: CaseMachines;
  try {
    const got = await acquireMachines(c, {
      qemu: opts.qemu,
      boards: opts.boards,
      fabric: networks,
      logDir,
      deadline,
      signal: caseAbort.signal,
      consoleChecks: c.scenario.consoleChecks,
      onConsoleLine: (machine, line) => opts.reporters.emitSync('onConsoleLine', { id: c.id, machine, line }),
      onState: (machine, state) => opts.reporters.emitSync('onMachineState', { id: c.id, machine, state }),
      onDied: (role, reason) => died.push(`${role}: ${reason}`),
      onLost: (why) => caseAbort.abort(new InfrastructureError(why)),
      output: event,
    });
    if ('skip' in got) {
      opts.signal.removeEventListener('abort', onRunAbort);
      await fabric?.close();
      return skipped(result, got.skip);
    }
    cm = got;
  } catch (err) {
    await fabric?.close();
    throw err;
  }
  const { machines } = cm;
  // The host's memory in use over the case, sampled each second: its peak is a JUnit property (host.memory.peak.mib).
  const memory = new MemoryPeak().start();
  result.machines.push(...cm.results);
  for (const m of Object.values(machines)) m.on('artifact', (a) => result.artifacts.push(a));
  networks();

  const lastLines = () => Object.values(machines)[0]?.log.lastLines(20);
  const invariants = new Invariants({ fail: (err) => caseAbort.abort(err), signal: caseAbort.signal, output: event });
  const step = stepRunner({ caseId: c.id, file: c.file, deadline, signal: caseAbort.signal, reporters: opts.reporters, steps: result.steps, lastLines });
  // The case's browser, started by the first browser.open().
  let caseBrowser: CaseBrowser | undefined;
  const ctx: ScenarioContext<Record<string, string>> = {
    // A fleet's role is the array of its machines (fleets.ts).
    machines: bodyMachines(machines, c.scenario.fleets) as Record<string, Machine>,
    step,
    skip: (reason: string) => {
      throw new SkipSignal(reason);
    },
    attach: (path: string, name?: string) => result.artifacts.push({ name: name ?? path.split('/').pop()!, path: resolve(path) }),
    log: output,
    property: (name: string, value: string | number) => {
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new TypeError(`property name "${name}": use letters, digits, ".", "-" and "_"`);
      (result.properties ??= {})[name] = String(value);
    },
    deadline,
    signal: caseAbort.signal,
    attempt: opts.attempt,
    inputs: Object.freeze({ ...opts.inputs }),
    net: fabricHandle(fabric, () => machines),
    browser: {
      open: (machine, o) => (caseBrowser ??= new CaseBrowser({ logDir, log: output, signal: caseAbort.signal })).open(machine, o),
    },
    install: installFlows(step, output, (name, value) => ((result.properties ??= {})[name] = String(value))),
    pause: (why?: string) => pause(why === undefined ? 'at ctx.pause()' : `at ctx.pause(${JSON.stringify(why)})`),
    invariant: (name, check, o) => invariants.add(name, check, o),
  };
  // A pause: the REPL (or, without a terminal, an attach) with the case's machines and context bound. The time it
  // lasts does not count against the scenario's or the step's deadline; .abort fails the case there.
  const pause = async (why: string, extra: Record<string, unknown> = {}): Promise<void> => {
    if (!opts.pauses) {
      output(`not paused ${why}: this run has no terminal; run with --debug (or --pause-on-failure) to pause and attach`);
      return;
    }
    event(`paused ${why}`);
    const bindings: Record<string, unknown> = { machines, net: ctx.net, step, ctx, inputs: ctx.inputs, ...extra };
    for (const [role, m] of Object.entries(machines)) if (bindable(role, bindings)) bindings[role] = m;
    const resume = (currentDeadline() ?? deadline).suspend();
    const r = await opts.pauses.pause({ caseId: c.id, why, machines, bindings, signal: opts.signal }).finally(resume);
    event(`pause ${why} ended after ${formatMs(r.ms)}: ${r.answer}`);
    if (r.answer === 'abort') throw new Error(`aborted from the REPL while paused ${why}`);
    if (r.answer === 'interrupted') throw new Error(`interrupted while paused ${why}`);
  };
  // --debug pauses once, before the first step the scenario's code takes (its setup's, else its run's).
  let debugPaused = !opts.pauses?.settings.debug;
  const debugPause = async () => {
    if (debugPaused) return;
    debugPaused = true;
    await pause('before the first step');
  };

  /** Machines that came up (started, and their shell answered): a board that did not failed its health check. */
  const healthy = new Set<ManagedMachine>();
  const mode = c.scenario.start ?? 'shell';
  let error: unknown;
  try {
    await withDeadline(deadline, async () => {
      const start = () => step(`start ${machineNames(Object.keys(machines), c.scenario.fleets)}`, () => startFleetHeld(fabric, Object.keys(machines).length, () => startMachines(machines, mode, { signal: caseAbort.signal, snapshots: opts.snapshots, warmTurn: opts.warmTurn, healthy, output: event }), event));
      let setup: unknown;
      if (c.scenario.setup && mode === 'shell') {
        const s = c.scenario.setup;
        setup = await startAtCheckpoint(c, { store: opts.checkpoints, machines, fabric, deadline, signal: caseAbort.signal, logDir, event, step, start, runSetup: async () => (await debugPause(), s.run(ctx)) });
        for (const m of Object.values(machines)) healthy.add(m);
        // Restored from the checkpoint, it decided no warm start: later cases need not wait for its turn.
        if (opts.snapshots && opts.warmTurn !== undefined) opts.snapshots.release(opts.warmTurn);
      } else {
        if (mode !== 'manual') await start();
        // Machines not brought to their shells: no checkpoint can hold them; the setup's steps just run.
        if (c.scenario.setup) {
          await debugPause();
          setup = await step(`setup: checkpoint "${c.scenario.setup.checkpoint}"`, () => c.scenario.setup!.run(ctx));
        }
      }
      await debugPause();
      await within(Promise.resolve().then(() => c.scenario.run({ ...ctx, setup })), deadline, `scenario "${c.scenario.name}" to finish`, { signal: caseAbort.signal, lastLines });
    });
  } catch (err) {
    error = err;
  }
  invariants.finish();
  result.host = memory.stop();
  outcome(result, error, { interrupted: opts.signal.aborted ? String(opts.signal.reason ?? 'run aborted') : undefined, died, file: c.file });
  for (const mr of result.machines) mr.facts = machines[mr.role]!.facts;
  // Its meshes for report.html: links, partitions and (while the machines are up) the routes batman-adv chose.
  if (fabric) result.topology = await networkPictures(fabric, machines, { routes: !opts.signal.aborted, signal: opts.signal }).catch(() => undefined);
  if (caseBrowser) result.artifacts.push(...(await caseBrowser.finish(result.status === 'failed' || result.status === 'error' || result.status === 'interrupted')));
  // A failed case's evidence from its machines still up (not after an interrupt: the run is ending).
  if ((result.status === 'failed' || result.status === 'error') && !opts.signal.aborted) {
    const ev = await collectEvidence(machines, logDir, { signal: opts.signal });
    result.artifacts.push(...ev.artifacts);
    for (const l of ev.lines) event(l);
    // --debug and --pause-on-failure: a look at the failed case's machines before they go.
    if (opts.pauses?.onFailure) await pause(`on failure: ${result.error?.message.split('\n')[0] ?? result.status}`, { error: result.error }).catch(() => undefined);
  }
  if (opts.recordSystems && !opts.signal.aborted) await Promise.all(result.machines.map(async (mr) => (mr.system = await systemOf(machines[mr.role]!, opts.signal))));

  opts.signal.removeEventListener('abort', onRunAbort);
  caseAbort.abort('case finished');
  // A board that did not come up in an infrastructure failure failed its health check: out of service until it passes one.
  const unhealthy = result.error?.kind === 'infrastructure' && mode === 'shell';
  await releaseMachines(cm, { quarantine: (role) => (unhealthy && cm.acquired.get(role)?.board && !healthy.has(machines[role]!) ? `did not come up for ${c.id}: ${result.error!.message.split('\n')[0]}` : undefined), output: event });
  // The networks' changes for report.html's timeline (the switch helper's own lines left out).
  const changes = (fabric?.log ?? []).filter((e) => e.event.startsWith('network '));
  if (changes.length) result.network = changes.map((e) => ({ t: Date.parse(e.at), event: e.event }));
  await fabric?.close();
  for (const n of fabric?.networks.values() ?? []) result.artifacts.push({ name: `${n.name}.pcap`, path: n.pcap.path });
  result.durationMs = now() - started;
  return result;
}

function skipped(result: AttemptResult, reason: string): AttemptResult {
  result.status = 'skipped';
  result.skipReason = reason;
  return result;
}

/** The try's status and error from what its body threw (nothing: passed). */
function outcome(result: AttemptResult, error: unknown, o: { interrupted?: string; died: string[]; file: string }): void {
  if (error === undefined) return;
  if (error instanceof SkipSignal) {
    skipped(result, error.reason);
    return;
  }
  const info: ErrorInfo = o.interrupted !== undefined ? { kind: 'interrupted', type: 'Interrupted', message: `interrupted: ${o.interrupted}` } : errorInfo(error, o.file);
  // A failure because a machine died reports the death (infrastructure), not its symptom.
  if (info.kind === 'test-failure' && o.died.length) {
    info.kind = 'infrastructure';
    info.message = `a machine died during the scenario: ${o.died.join('; ')}\n(then: ${info.message})`;
  }
  result.error = info;
  result.status = info.kind === 'interrupted' ? 'interrupted' : info.kind === 'test-failure' ? 'failed' : 'error';
}
