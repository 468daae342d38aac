// Checkpoints: a scenario's setup steps bring its machines to a named state; the first case that runs them saves every
// machine (QEMU's migration stream, disk overlays, EFI variables) and the networks' link conditions under a key made
// of everything that led there, and later cases with the same key start their machines from it instead of booting
// and replaying the steps. A restore gives each machine its own identity (warm-restore.ts); one that fails drops the
// checkpoint and replays the steps, saying so. The store is the run's SnapshotStore (warm-start.ts).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { Fabric } from '../net/fabric.ts';
import type { CheckpointReport, ManagedMachine } from '../protocols/machine.ts';
import { QemuMachine } from '../qemu/qemu-machine.ts';
import { snapshotKey, type CheckpointFiles, type CheckpointMeta, type SnapshotStore } from '../qemu/warm-start.ts';
import { type Deadline, formatMs, now } from '../time/deadline.ts';
import type { PlannedCase } from './plan.ts';

/** What a case's setup checkpoint needs of its try. */
export interface CheckpointContext {
  store: SnapshotStore | undefined;
  machines: Record<string, ManagedMachine>;
  fabric: Fabric | undefined;
  deadline: Deadline;
  signal: AbortSignal;
  /** The case's log folder: named in the checkpoint as where its steps are logged. */
  logDir: string;
  /** A line of the case's output. */
  event(line: string): void;
  /** Runs a named step of the case. */
  step<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Starts the machines as the case would without a checkpoint (cold or warm). */
  start(): Promise<void>;
  /** The setup's steps. */
  runSetup(): Promise<unknown>;
}

/**
 * Brings the case's machines to its scenario's setup checkpoint and returns the setup's value: restored from the
 * checkpoint when the store has it, else started as usual, the setup's steps run, and the checkpoint saved. A restore
 * that fails is dropped and the steps replay, once; the machines' facts and the case's output say which happened.
 */
export async function startAtCheckpoint(c: PlannedCase, ctx: CheckpointContext): Promise<unknown> {
  const name = c.scenario.setup!.checkpoint;
  const store = ctx.store;
  if (!store) return replay(c, ctx, { reason: 'checkpoints are off (--no-checkpoints)' });
  const can = savable(ctx.machines);
  if ('reason' in can) return replay(c, ctx, { reason: can.reason });
  const vms = can.vms;
  const parts = await checkpointParts(c, vms);
  const key = `cp-${snapshotKey(parts)}`;
  let found = await store.findCheckpoint(key);
  if (!found) {
    // One case of the run makes a checkpoint; others that reach it meanwhile (a repeat on another worker) wait for it.
    const claim = store.claim<CheckpointFiles>(key);
    if (claim.owner) {
      let made: CheckpointFiles | undefined;
      try {
        return await replay(c, ctx, { key, parts, saved: (f) => (made = f) });
      } finally {
        claim.done(made);
      }
    }
    found = await ctx.step(`wait for checkpoint "${name}" (another case is making it)`, () => claim.wait);
    if (!found) return replay(c, ctx, { key, parts, reason: 'the case making it could not save it' });
  }
  const t = now();
  try {
    await ctx.step(`start ${Object.keys(vms).join(', ')} from checkpoint "${name}"`, () => restoreAll(found, vms, ctx));
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    const restoreFailed = (err as Error).message.split('\n').slice(0, 3).join(' / ');
    ctx.event(`infrastructure: restoring checkpoint "${name}" failed (${restoreFailed}); it is dropped and its steps replay`);
    await store.discard(key, found);
    for (const m of Object.values(vms)) await m.snapshots.dropRestore();
    return replay(c, ctx, { key, parts, restoreFailed });
  }
  const ms = now() - t;
  report(vms, { name, mode: 'restored', ms: Math.round(ms), key, madeBy: found.meta.madeBy });
  ctx.event(`checkpoint "${name}": restored in ${formatMs(ms)} (its steps took ${formatMs(found.meta.stepsMs)} in ${found.meta.madeBy})`);
  return found.meta.value;
}

/**
 * Starts the machines as usual and runs the setup's steps; with a key, saves the checkpoint when the machines can
 * still be saved at the end of the steps (else the report says why).
 */
async function replay(c: PlannedCase, ctx: CheckpointContext, o: { key?: string; parts?: Record<string, unknown>; reason?: string; restoreFailed?: string; saved?: (f: CheckpointFiles) => void }): Promise<unknown> {
  const name = c.scenario.setup!.checkpoint;
  await ctx.start();
  const t = now();
  const value = await ctx.step(`setup: checkpoint "${name}"`, () => ctx.runSetup());
  const json = asJson(value, c);
  const stepsMs = now() - t;
  let reason = o.reason;
  let saved = false;
  if (o.key && ctx.store && !ctx.signal.aborted) {
    const can = savable(ctx.machines);
    const dead = Object.entries(ctx.machines).find(([, m]) => m.state !== 'running');
    reason = dead ? `machine ${dead[0]} is ${dead[1].state} at the end of the steps: a checkpoint holds running machines` : 'reason' in can ? can.reason : undefined;
    if ('vms' in can && !reason) {
      const vms = can.vms;
      try {
        const ts = now();
        const files = await saveAll(ctx.store, o.key, { name, scenario: c.scenario.name, file: c.file, madeBy: `${c.id} (${ctx.logDir})`, createdAt: new Date().toISOString(), stepsMs: Math.round(stepsMs), value: JSON.parse(json), parts: o.parts, fabric: ctx.fabric?.linkState() }, vms, ctx.deadline);
        o.saved?.(files);
        saved = true;
        ctx.event(`checkpoint "${name}": saved in ${formatMs(now() - ts)} (key ${o.key})`);
      } catch (err) {
        reason = `saving it failed: ${(err as Error).message.split('\n')[0]}`;
        ctx.event(`infrastructure: checkpoint "${name}" not saved: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  report(ctx.machines, { name, mode: saved ? 'saved' : 'replayed', ms: Math.round(now() - t), ...(o.key ? { key: o.key } : {}), ...(reason ? { reason } : {}), ...(o.restoreFailed ? { restoreFailed: o.restoreFailed } : {}) });
  if (!saved) ctx.event(`checkpoint "${name}": its steps ran${reason ? ` (${reason})` : ''}`);
  return JSON.parse(json);
}

/** Each VM's facts say how it reached the checkpoint. */
function report(machines: Record<string, ManagedMachine>, r: CheckpointReport): void {
  for (const m of Object.values(machines)) if (m instanceof QemuMachine && m.facts) m.facts.checkpoint = { ...r };
}

/** The case's machines as VMs whose state can be saved, or why not: a board, or what rules out a VM's snapshot. */
function savable(machines: Record<string, ManagedMachine>): { vms: Record<string, QemuMachine> } | { reason: string } {
  const vms: Record<string, QemuMachine> = {};
  for (const [role, m] of Object.entries(machines)) {
    if (!(m instanceof QemuMachine)) return { reason: `machine ${role} is a lab board: its state cannot be saved` };
    const why = m.snapshots.ruledOut();
    if (why) return { reason: `machine ${role}: ${why}` };
    vms[role] = m;
  }
  return { vms };
}

/** The setup's value as JSON, the form it is saved in: a restored case gets the same value as the one that ran the steps. */
function asJson(value: unknown, c: PlannedCase): string {
  try {
    return JSON.stringify(value ?? null);
  } catch (err) {
    throw new ConfigurationError(`${c.file}: scenario ${JSON.stringify(c.scenario.name)}: setup.run must return JSON (it is saved with the checkpoint): ${(err as Error).message}`, { details: { file: c.file, field: 'setup.run' } });
  }
}

/** Everything that led to the checkpoint: the scenario's source but its body, fleetlab's, and the machines' shapes. */
async function checkpointParts(c: PlannedCase, machines: Record<string, QemuMachine>): Promise<Record<string, unknown>> {
  const shapes: Record<string, unknown> = {};
  for (const [role, m] of Object.entries(machines)) shapes[role] = await m.snapshots.shapeParts();
  return {
    v: 1,
    checkpoint: c.scenario.setup!.checkpoint,
    scenario: c.scenario.name,
    source: await scenarioSourceHash(resolve(c.file), c.scenario.run.toString()),
    fleetlab: await fleetlabHash(),
    networks: c.scenario.networks ?? null,
    hostLink: !!(c.scenario.ssh || c.scenario.hostLink),
    machines: shapes,
  };
}

/**
 * A hash of the scenario file with its run body cut out (a change to the body after the checkpoint keeps it; any
 * other change, to the setup or a helper, makes a new one) and of the files it imports by relative path.
 */
export async function scenarioSourceHash(file: string, runBody: string): Promise<string> {
  const h = createHash('sha256');
  const seen = new Set<string>();
  const add = async (path: string, cut?: string): Promise<void> => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = await readFile(path, 'utf8');
    h.update(`${path}\n`).update(cut && text.includes(cut) ? text.replace(cut, '<run>') : text);
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = resolve(dirname(path), m[1]!);
      const candidates = [target, `${target}.ts`, target.replace(/\.js$/, '.ts')];
      const found = candidates.find((p) => existsSync(p) && !p.endsWith('/'));
      if (found) await add(found);
    }
  };
  await add(file, runBody);
  return h.digest('hex').slice(0, 24);
}

let selfHash: Promise<string> | undefined;

/** A hash of fleetlab's own code (harness/ and machines/, tests left out): what the steps did depends on it. */
export function fleetlabHash(): Promise<string> {
  selfHash ??= (async () => {
    const h = createHash('sha256');
    const root = join(import.meta.dirname, '..', '..');
    for (const dir of ['harness', 'machines']) {
      const base = join(root, dir);
      if (!existsSync(base)) continue;
      const files = (await readdir(base, { recursive: true })).filter((f) => /\.(ts|js|sh|c)$/.test(f) && !/\.test\.|(^|\/)fixtures\//.test(f)).sort();
      for (const f of files) h.update(`${dir}/${f}\n`).update(await readFile(join(base, f)));
    }
    return h.digest('hex').slice(0, 24);
  })();
  return selfHash;
}

/** Every machine from its part of the checkpoint, in parallel, then the networks' links as they were. */
async function restoreAll(cp: CheckpointFiles, machines: Record<string, QemuMachine>, ctx: CheckpointContext): Promise<void> {
  await Promise.all(
    Object.entries(machines).map(async ([role, m]) => {
      const snap = cp.machines[role];
      if (!snap) throw new Error(`checkpoint ${cp.meta.key} has no machine ${role}`);
      await m.snapshots.restore(snap, { deadline: ctx.deadline, signal: ctx.signal });
      m.boots = cp.meta.roles[role]!.boots;
      m.log.note(`checkpoint "${cp.meta.name}": restored (made by ${cp.meta.madeBy}; its steps are logged in ${cp.meta.roles[role]!.log})`);
    }),
  );
  if (ctx.fabric && cp.meta.fabric) ctx.fabric.restoreLinkState(cp.meta.fabric);
}

/** Stops every machine (their clocks and links stand still together), captures each into the checkpoint, lets them run on. */
async function saveAll(store: SnapshotStore, key: string, meta: Omit<CheckpointMeta, 'key' | 'roles'>, machines: Record<string, QemuMachine>, deadline: Deadline): Promise<CheckpointFiles> {
  const ms = Object.entries(machines);
  const frozen: QemuMachine[] = [];
  try {
    for (const [, m] of ms) {
      await m.snapshots.freeze();
      frozen.push(m);
    }
    return await store.writeCheckpoint(key, meta, async (dir) => {
      const roles: CheckpointMeta['roles'] = {};
      for (const [role, m] of ms) roles[role] = { ...(await m.snapshots.capture(join(dir, role), deadline)), profile: m.profile.name, log: m.log.path };
      return roles;
    });
  } finally {
    await Promise.all(frozen.map((m) => m.snapshots.thaw()));
  }
}
