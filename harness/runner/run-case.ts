// Runs one try of one case: boots its machines in parallel, runs the body with steps and deadlines, stops everything.
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CaseBrowser } from '../browser/browser.ts';
import { installFlows } from '../install/flows.ts';
import type { BoardLease, BoardProvider } from './boards.ts';
import { ConfigurationError, InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import { QemuMachine } from '../qemu/qemu-machine.ts';
import type { SnapshotStore } from '../qemu/warm-start.ts';
import type { WarmPlan } from '../qemu/qemu-machine.ts';
import { Fabric } from '../net/fabric.ts';
import { fabricHandle } from '../net/fabric-handle.ts';
import type { ReporterMux } from '../report/reporter.ts';
import { Deadline, now, raceDeadline, withDeadline } from '../time/deadline.ts';
import { errorInfo } from './error-info.ts';
import type { PlannedCase } from './plan.ts';
import type { AttemptResult, ErrorInfo, StepResult } from './results.ts';
import type { ScenarioContext } from './scenario.ts';
import type { ManagedMachine } from '../protocols/machine.ts';

const DEFAULT_SCENARIO_TIMEOUT = 10 * 60_000;

class SkipSignal extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`skipped: ${reason}`);
    this.reason = reason;
  }
}

/** Options of one try. */
export interface RunCaseOptions {
  attempt: number;
  outputDir: string;
  reporters: ReporterMux;
  /** Aborted when the run is interrupted. */
  signal: AbortSignal;
  /** Keep failed machines running; the runner attaches consoles and stops them later. */
  keepOnFailure?: boolean;
  accel?: 'auto' | 'kvm' | 'tcg' | 'hvf';
  /** Warm starts: machines are restored from (or make) snapshots in this store. */
  snapshots?: SnapshotStore;
  /** This case's place in the run, for deciding warm starts in plan order. */
  warmTurn?: number;
  /** The lab, for cases on boards (--lab). */
  boards?: BoardProvider;
}

/** The try's result, and the machines left running when keepOnFailure asked for it. */
export async function runCase(c: PlannedCase, opts: RunCaseOptions): Promise<{ result: AttemptResult; kept: QemuMachine[] }> {
  const started = now();
  const startedAt = new Date().toISOString();
  const slug = c.id.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');
  const logDir = resolve(opts.outputDir, 'machines', slug, `try-${opts.attempt}`);
  await mkdir(logDir, { recursive: true });
  const result: AttemptResult = { attempt: opts.attempt, status: 'passed', startedAt, durationMs: 0, steps: [], machines: [], artifacts: [], output: [] };

  if (c.scenario.skip) {
    result.status = 'skipped';
    result.skipReason = typeof c.scenario.skip === 'string' ? c.scenario.skip : 'marked skip';
    return { result, kept: [] };
  }

  const scenarioMs = c.scenario.timeout ?? DEFAULT_SCENARIO_TIMEOUT;
  const deadline = Deadline.after(scenarioMs, `scenario "${c.scenario.name}"`, { hint: 'raise the scenario\'s timeout, or pass --timeout-scale' });
  const caseAbort = new AbortController();
  const onRunAbort = () => caseAbort.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onRunAbort, { once: true });

  // The case's networks: a switch helper, ports per machine, captures in the case's log folder. A switch that dies
  // cuts its machines off: the case ends at once as an infrastructure error naming the networks.
  const fabric = c.scenario.networks
    ? new Fabric(c.scenario.networks, { pcapDir: logDir, onEvent: (e) => result.output.push(`[${new Date().toISOString()}] ${e}`), onSwitchExit: (err) => caseAbort.abort(err) })
    : undefined;
  const machines: Record<string, ManagedMachine> = {};
  const died: string[] = [];
  // Lab boards first: a lease for each board role (waiting while they are busy), or the case is skipped.
  const leases = new Map<string, BoardLease>();
  const releaseBoards = async (quarantine?: (role: string) => string | undefined) => {
    for (const [role, l] of leases) await l.release({ quarantine: quarantine?.(role) }).catch((err: Error) => result.output.push(`[${new Date().toISOString()}] lab: releasing ${l.info.board} failed: ${err.message}`));
    leases.clear();
  };
  for (const [role, candidates] of Object.entries(c.boards ?? {})) {
    if (!opts.boards) throw new ConfigurationError(`case ${c.id} runs on lab boards but the run has no lab (--lab)`);
    const got = await opts.boards
      .lease(candidates, { role, logDir, deadline, signal: caseAbort.signal, consoleChecks: c.scenario.consoleChecks, onConsoleLine: (line) => opts.reporters.emitSync('onConsoleLine', { id: c.id, machine: role, line }), onLost: (why) => caseAbort.abort(new InfrastructureError(why)) })
      .catch(async (err: unknown) => {
        await releaseBoards();
        throw err;
      });
    if ('skip' in got) {
      await releaseBoards();
      opts.signal.removeEventListener('abort', onRunAbort);
      result.status = 'skipped';
      result.skipReason = got.skip;
      return { result, kept: [] };
    }
    leases.set(role, got);
    result.output.push(`[${new Date().toISOString()}] lab: ${role} runs on board ${got.info.board} (${got.info.lab}; serial ${got.info.serial}; power ${got.info.power})`);
  }
  for (const [role, profile] of Object.entries(c.profiles)) {
    const lease = leases.get(role);
    if (lease) {
      const m = lease.machine;
      m.on('state', (state: string) => opts.reporters.emitSync('onMachineState', { id: c.id, machine: role, state }));
      machines[role] = m;
      result.machines.push({ role, name: role, profile: profile.name, logPath: m.log.path, logStartedAt: m.log.t0, board: lease.info });
      continue;
    }
    // The role is the machine's name and so the testbed's hostname.
    const name = role;
    const m = new QemuMachine(profile, {
      name,
      logDir,
      accel: opts.accel,
      consoleChecks: c.scenario.consoleChecks,
      nics: fabric ? await fabric.plan(c.scenario.name, role) : undefined,
      hostLink: c.scenario.ssh || c.scenario.hostLink,
      onConsoleLine: (line) => opts.reporters.emitSync('onConsoleLine', { id: c.id, machine: name, line }),
    });
    m.on('state', (state: string) => opts.reporters.emitSync('onMachineState', { id: c.id, machine: name, state }));
    m.on('died', (reason: string) => died.push(`${name}: ${reason}`));
    machines[role] = m;
    result.machines.push({ role, name, profile: profile.name, logPath: m.log.path, logStartedAt: m.log.t0 });
  }

  /** `work`'s value, or a test-failure TimeoutError naming `awaited` once `budget` expires (raceDeadline handles a late rejection). */
  const within = async <T>(work: Promise<T>, budget: Deadline, awaited: string): Promise<T> => {
    const r = await raceDeadline(work, budget, caseAbort.signal);
    if (r.timedOut) throw new TimeoutError('test-failure', { awaited, deadline: budget, lastLines: Object.values(machines)[0]?.log.lastLines(20) });
    return r.value;
  };

  // Steps: a tree, nested through async context so parallel steps nest correctly.
  const stepStore = new AsyncLocalStorage<{ step: StepResult; path: string[]; deadline: Deadline }>();
  const step = async <T>(name: string, fn: () => Promise<T> | T, sopts?: { timeout?: number }): Promise<T> => {
    const parent = stepStore.getStore();
    const s: StepResult = { name, startedAt: Date.now(), durationMs: 0, status: 'running', steps: [] };
    (parent ? parent.step.steps : result.steps).push(s);
    const path = [...(parent?.path ?? []), name];
    const parentDeadline = parent?.deadline ?? deadline;
    const stepDeadline = sopts?.timeout ? parentDeadline.child(sopts.timeout, `step "${path.join(' › ')}"`, 'pass { timeout } to step()') : parentDeadline;
    opts.reporters.emitSync('onStepBegin', { id: c.id, path });
    const t0 = now();
    try {
      const body = stepStore.run({ step: s, path, deadline: stepDeadline }, () => withDeadline(stepDeadline, () => Promise.resolve().then(fn)));
      const value = await within(body, stepDeadline, `step "${path.join(' › ')}" to finish`);
      s.status = 'passed';
      return value;
    } catch (err) {
      s.status = 'failed';
      if (!(err instanceof SkipSignal)) s.error = errorInfo(err, c.file);
      throw err;
    } finally {
      s.durationMs = now() - t0;
      opts.reporters.emitSync('onStepEnd', { id: c.id, path, step: s });
    }
  };

  // The case's browser, started by the first browser.open().
  let caseBrowser: CaseBrowser | undefined;
  const ctx: ScenarioContext<Record<string, string>> = {
    machines,
    step,
    skip: (reason: string) => {
      throw new SkipSignal(reason);
    },
    attach: (path: string, name?: string) => result.artifacts.push({ name: name ?? path.split('/').pop()!, path: resolve(path) }),
    log: (message: string) => result.output.push(message),
    property: (name: string, value: string | number) => {
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new TypeError(`property name "${name}": use letters, digits, ".", "-" and "_"`);
      (result.properties ??= {})[name] = String(value);
    },
    deadline,
    signal: caseAbort.signal,
    attempt: opts.attempt,
    net: fabricHandle(fabric),
    browser: {
      open: (machine, o) => (caseBrowser ??= new CaseBrowser({ logDir, log: (line) => result.output.push(line), signal: caseAbort.signal })).open(machine, o),
    },
    install: installFlows(step, (message) => result.output.push(message), (name, value) => ((result.properties ??= {})[name] = String(value))),
  };

  /** Machines that came up (started, and their shell answered): a board that did not failed its health check. */
  const healthy = new Set<ManagedMachine>();
  let error: unknown;
  try {
    await withDeadline(deadline, async () => {
      const mode = c.scenario.start ?? 'shell';
      if (mode !== 'manual') {
        await step(`start ${Object.keys(machines).join(', ')}`, async () => {
          // Warm starts: each machine's plan (restore, boot and save, wait for the one booting) decided in plan order.
          const plans = new Map<QemuMachine, WarmPlan>();
          const store = opts.snapshots;
          if (store && mode === 'shell') {
            await store.inTurn(opts.warmTurn ?? 0, async () => {
              try {
                for (const m of Object.values(machines)) if (m instanceof QemuMachine && m.profile.guest.shell.kind !== 'none') plans.set(m, await m.prepareWarm(store));
              } catch (err) {
                // A build claimed here will not happen: whoever waits for it boots cold instead of waiting forever.
                for (const p of plans.values()) if (p.kind === 'build') p.done(undefined);
                throw err;
              }
            });
          }
          await Promise.all(
            Object.values(machines).map(async (m) => {
              const plan = m instanceof QemuMachine ? plans.get(m) : undefined;
              if (store && plan && m instanceof QemuMachine) {
                const r = await m.startWarm(store, { signal: caseAbort.signal, plan });
                if (r.restoreFailed) result.output.push(`[${new Date().toISOString()}] infrastructure: ${m.name}: restoring its snapshot failed, booted cold instead: ${r.restoreFailed}`);
                return;
              }
              await m.start({ signal: caseAbort.signal });
              if (mode === 'shell' && m.profile.guest.shell.kind !== 'none') await m.waitForShell({ signal: caseAbort.signal });
              healthy.add(m);
            }),
          );
        });
      }
      await within(Promise.resolve().then(() => c.scenario.run(ctx)), deadline, `scenario "${c.scenario.name}" to finish`);
    });
  } catch (err) {
    error = err;
  }

  if (error instanceof SkipSignal) {
    result.status = 'skipped';
    result.skipReason = error.reason;
  } else if (error !== undefined) {
    const info: ErrorInfo = opts.signal.aborted ? { kind: 'interrupted', type: 'Interrupted', message: `interrupted: ${String(opts.signal.reason ?? 'run aborted')}` } : errorInfo(error, c.file);
    // A failure because a machine died reports the death (infrastructure), not its symptom.
    if (info.kind === 'test-failure' && died.length) {
      info.kind = 'infrastructure';
      info.message = `a machine died during the scenario: ${died.join('; ')}\n(then: ${info.message})`;
    }
    result.error = info;
    result.status = info.kind === 'interrupted' ? 'interrupted' : info.kind === 'test-failure' ? 'failed' : 'error';
  }
  for (const mr of result.machines) mr.facts = machines[mr.role]!.facts;
  if (caseBrowser) result.artifacts.push(...(await caseBrowser.finish(result.status === 'failed' || result.status === 'error' || result.status === 'interrupted')));

  opts.signal.removeEventListener('abort', onRunAbort);
  caseAbort.abort('case finished');
  const keep = opts.keepOnFailure && (result.status === 'failed' || result.status === 'error');
  const kept = keep ? Object.values(machines).filter((m): m is QemuMachine => m instanceof QemuMachine && m.state === 'running') : [];
  await Promise.all(Object.values(machines).filter((m) => !(kept as ManagedMachine[]).includes(m)).map((m) => m.stop()));
  // A board that did not come up in an infrastructure failure failed its health check: out of service until it passes one.
  const unhealthy = result.error?.kind === 'infrastructure' && (c.scenario.start ?? 'shell') === 'shell';
  await releaseBoards((role) => (unhealthy && !healthy.has(machines[role]!) ? `did not come up for ${c.id}: ${result.error!.message.split('\n')[0]}` : undefined));
  if (fabric && !kept.length) await fabric.close();
  for (const n of fabric?.networks.values() ?? []) result.artifacts.push({ name: `${n.name}.pcap`, path: n.pcap.path });
  result.durationMs = now() - started;
  return { result, kept };
}
