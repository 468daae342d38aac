// A try's machines: acquired from their providers (lab boards first, then VMs), started (warm where asked), and given
// back at the end. The runner holds ManagedMachines; what is QEMU's alone (warm starts) it asks
// of a QemuMachine.
import { cpus } from 'node:os';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { Fabric } from '../net/fabric.ts';
import type { ManagedMachine } from '../protocols/machine.ts';
import type { AcquiredMachine, AcquireOptions } from '../protocols/provider.ts';
import { QemuMachine, type WarmPlan } from '../qemu/qemu-machine.ts';
import type { QemuProvider } from '../qemu/qemu-provider.ts';
import type { SnapshotStore } from '../qemu/warm-start.ts';
import type { BoardProvider } from './boards.ts';
import type { PlannedCase } from './plan.ts';
import type { MachineEvent, MachineResult } from './results.ts';
import type { StartMode } from './scenario.ts';
import { inSlots } from '../time/in-slots.ts';

/** A try's machines by role, and how each goes back. */
export interface CaseMachines {
  machines: Record<string, ManagedMachine>;
  acquired: Map<string, AcquiredMachine>;
  /** The machines the reports list, in role order. */
  results: MachineResult[];
}

/** Where a try's machines come from, and what it is told of them. */
export interface AcquireContext extends Omit<AcquireOptions, 'role' | 'onConsoleLine'> {
  qemu: QemuProvider;
  boards?: BoardProvider;
  /** The case's networks, which plan each VM's NICs. */
  fabric?: () => Fabric | undefined;
  onConsoleLine(role: string, line: string): void;
  onState(role: string, state: string): void;
  /** A VM died on its own (QEMU exited unexpectedly). */
  onDied(role: string, reason: string): void;
  /** A line of the case's output. */
  output(line: string): void;
}

/**
 * Acquires every role's machine: a lease for each board role first (waiting while the boards are busy), then the VMs.
 * When a lab answers { skip } (every candidate reserved or quarantined), what was acquired is given back and the skip
 * returned; a failure gives back what was acquired, then throws.
 */
export async function acquireMachines(c: PlannedCase, ctx: AcquireContext): Promise<CaseMachines | { skip: string }> {
  const cm: CaseMachines = { machines: {}, acquired: new Map(), results: [] };
  const opts = (role: string): AcquireOptions => ({ ...ctx, role, onConsoleLine: (line) => ctx.onConsoleLine(role, line) });
  const boardRoles = Object.entries(c.boards ?? {});
  try {
    for (const [role, candidates] of boardRoles) {
      if (!ctx.boards) throw new ConfigurationError(`case ${c.id} runs on lab boards but the run has no lab (--lab)`);
      const got = await ctx.boards.acquire(candidates, opts(role));
      if ('skip' in got) {
        await releaseMachines(cm, { output: ctx.output });
        return got;
      }
      cm.acquired.set(role, got);
      ctx.output(`[${new Date().toISOString()}] lab: ${role} runs on board ${got.board.board} (${got.board.lab}; serial ${got.board.serial}; power ${got.board.power})`);
    }
    for (const [role, profile] of Object.entries(c.profiles)) {
      if (!cm.acquired.has(role)) {
        const fabric = ctx.fabric?.();
        const got = await ctx.qemu.acquire({ profile, nics: fabric ? await fabric.plan(c.scenario.name, role) : undefined, hostLink: c.scenario.ssh || c.scenario.hostLink }, opts(role));
        got.machine.on('died', (reason: string) => ctx.onDied(role, reason));
        cm.acquired.set(role, got);
      }
      const { machine, board } = cm.acquired.get(role)!;
      // Its events for report.html's timeline.
      const events: MachineEvent[] = [{ t: Date.now(), kind: 'state', detail: machine.state }];
      const event = (kind: MachineEvent['kind'], detail: string) => events.push({ t: Date.now(), kind, detail });
      machine.on('state', (state) => {
        ctx.onState(role, state);
        event('state', state);
      });
      machine.on('reset', (boots) => event('reset', `boot ${boots}`));
      machine.on('console-check', (hit) => event('console-check', `${hit.check.name}: ${hit.line}`));
      cm.machines[role] = machine;
      const fleet = Object.entries(c.scenario.fleets ?? {}).find(([, names]) => names.includes(role))?.[0];
      cm.results.push({ role, name: machine.name, profile: profile.name, logPath: machine.log.path, logStartedAt: machine.log.t0, events, ...(board ? { board } : {}), ...(fleet ? { fleet } : {}) });
    }
    placeFleet(Object.values(cm.machines).filter((m) => m instanceof QemuMachine), ctx.output);
  } catch (err) {
    await releaseMachines(cm, { output: ctx.output });
    throw err;
  }
  return cm;
}

/**
 * Brings the machines as far as `mode` says, in parallel: powered on, and with 'shell' until their shells answer.
 * VMs of a warm case start from snapshots (plans decided in plan order, so the first of a shape boots and saves).
 * `healthy` collects the machines that came up (a board that did not failed its health check).
 */
export async function startMachines(machines: Record<string, ManagedMachine>, mode: StartMode, opts: { signal: AbortSignal; snapshots?: SnapshotStore; warmTurn?: number; healthy: Set<ManagedMachine>; output(line: string): void }): Promise<void> {
  if (mode === 'manual') return;
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
  await inSlots(Object.values(machines), startSlots(), async (m) => {
      const plan = m instanceof QemuMachine ? plans.get(m) : undefined;
      if (store && plan && m instanceof QemuMachine) {
        const r = await m.startWarm(store, { signal: opts.signal, plan });
        if (r.restoreFailed) opts.output(`[${new Date().toISOString()}] infrastructure: ${m.name}: restoring its snapshot failed, booted cold instead: ${r.restoreFailed}`);
        return;
      }
      await m.start({ signal: opts.signal });
      if (mode === 'shell' && m.profile.guest.shell.kind !== 'none') await m.waitForShell({ signal: opts.signal });
      opts.healthy.add(m);
  });
}

/**
 * Runs `start` (startMachines) with a fleet's meshes (its batman-adv networks) held: every frame dropped until every
 * machine has started (Network.hold). Otherwise the nodes up first forward each other's originator messages, an idle
 * cost that grows with each node up (a meshed node of a 64-grid costs ~3.6 % of a core), while the rest restore on
 * what CPU is left: measured on a 128-node grid, restores slowed from 8 s to minutes each. Scenarios see no
 * difference: their code runs once every machine has started and the links are as they declared them.
 */
export async function startFleetHeld<T>(fabric: Fabric | undefined, machines: number, start: () => Promise<T>, output: (line: string) => void): Promise<T> {
  const meshes = fabric && isFleet(machines) ? [...fabric.networks.values()].filter((n) => n.batman) : [];
  if (!meshes.length) return start();
  for (const n of meshes) n.hold();
  output(`[${new Date().toISOString()}] a fleet of ${machines}: network${meshes.length > 1 ? 's' : ''} ${meshes.map((n) => n.name).join(', ')} held (every frame dropped) until every machine has started`);
  try {
    return await start();
  } finally {
    for (const n of meshes) n.release();
  }
}

/** Whether `machines` VMs make a fleet: more than a case starts at once. A fleet runs alone and is placed (placeFleet). */
export function isFleet(machines: number): boolean {
  return machines > startSlots();
}

/**
 * A fleet's VMs each run on one host CPU, round robin, under the batch scheduler (qemu-command.ts's HostPlacement:
 * fewer cross-CPU wakeups and preemptions among many idle VMs); $FLEETLAB_FLEET_PLACEMENT=off leaves them be.
 */
function placeFleet(vms: QemuMachine[], output: (line: string) => void): void {
  if (!isFleet(vms.length) || process.env.FLEETLAB_FLEET_PLACEMENT === 'off') return;
  const cores = cpus().length;
  vms.forEach((m, i) => (m.hostProcess.placement = { cpu: i % cores, batch: true }));
  output(`[${new Date().toISOString()}] a fleet of ${vms.length} VMs: each on one host CPU (round robin over ${cores}), under the batch scheduler (FLEETLAB_FLEET_PLACEMENT=off: as the host schedules)`);
}

/**
 * How many machines start at once: four per host core, or $FLEETLAB_START_SLOTS. A fleet's 127 restores at once on 2 cores each wait minutes
 * for the CPU, past their shells' deadlines (measured: every restore of a 128-node fleet failed and booted cold);
 * started a few at a time each is up in seconds and the rest follow.
 */
export function startSlots(): number {
  const env = Number(process.env.FLEETLAB_START_SLOTS);
  return Number.isInteger(env) && env > 0 ? env : Math.max(4, cpus().length * 4);
}

/**
 * Gives every machine back (stopped and, for a board, its lease released: quarantined when `quarantine` gives a
 * reason for its role). A failure to give one back is a line of the case's output, not an error.
 */
export async function releaseMachines(cm: CaseMachines, opts: { quarantine?: (role: string) => string | undefined; output(line: string): void }): Promise<void> {
  await Promise.all(
    [...cm.acquired].map(([role, a]) =>
        a.release({ quarantine: opts.quarantine?.(role) }).catch((err: Error) => opts.output(`[${new Date().toISOString()}] ${a.board ? `lab: releasing ${a.board.board}` : `stopping ${role}`} failed: ${err.message}`)),
      ),
  );
  cm.acquired.clear();
}
