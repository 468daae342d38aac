// `fleetlab up <profile|scenario-file>`: machines you can just start. Boots `--count` machines of a profile (or a
// scenario's machines, without running it) on the networks asked for, with SSH forwards, warm where a snapshot of
// their shape is cached, and opens the REPL with them bound (`machines`, each by name, `net`); Ctrl-D (or the end
// of its input) stops them all and leaves nothing behind. `fleetlab attach`, `console` and `ssh` reach them too.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cacheDir } from '../cache/cache-dir.ts';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { Fabric, type NetworkSpec } from '../net/fabric.ts';
import { fabricHandle } from '../net/fabric-handle.ts';
import type { ManagedMachine } from '../protocols/machine.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import { QemuProvider } from '../qemu/qemu-provider.ts';
import { SnapshotStore } from '../qemu/warm-start.ts';
import { acquireMachines, releaseMachines, startMachines, type CaseMachines } from '../runner/case-machines.ts';
import { planRun, type PlannedCase } from '../runner/plan.ts';
import { prepareImages } from '../runner/prepare-images.ts';
import { scenario } from '../runner/scenario.ts';
import { openReplSession } from '../debug/repl-session.ts';
import { bindable } from '../debug/repl.ts';
import { Deadline } from '../time/deadline.ts';
import { killAllChildrenSync } from '../process/supervisor.ts';

export interface UpArgs {
  target: string;
  count?: number;
  net?: string[];
  name: string;
  grep?: string;
  ssh: boolean;
  warm: boolean;
  accel?: 'auto' | 'kvm' | 'tcg' | 'hvf';
  output?: string;
  /** How long the machines may take to come up. */
  bootTimeoutMs: number;
}

/** Runs `fleetlab up`; its exit code once the REPL ends and the machines are gone. */
export async function upCommand(a: UpArgs): Promise<number> {
  const c = await upCase(a);
  const id = `up-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(2).toString('hex')}`;
  const outputDir = resolve(a.output ?? join('reports', id));
  mkdirSync(outputDir, { recursive: true });
  const say = (l: string) => process.stdout.write(`${l}\n`);
  await prepareImages([c], { write: (l) => process.stderr.write(`${l}\n`) });

  const abort = new AbortController();
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      killAllChildrenSync();
      process.exit(130);
    }
    signalled = true;
    process.stderr.write(`\nfleetlab up: ${sig}: stopping the machines\n`);
    abort.abort(`received ${sig}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const deadline = Deadline.after(a.bootTimeoutMs, 'fleetlab up: the machines to come up', { hint: 'pass --boot-timeout' });
  const fabric = c.scenario.networks ? new Fabric(c.scenario.networks, { pcapDir: outputDir, onSwitchExit: (err) => abort.abort(err) }) : undefined;
  const store = a.warm ? await SnapshotStore.open(cacheDir('up-snapshots')) : undefined;
  let cm: CaseMachines | undefined;
  try {
    const got = await acquireMachines(c, {
      qemu: new QemuProvider({ accel: a.accel }),
      fabric: () => fabric,
      logDir: outputDir,
      deadline,
      signal: abort.signal,
      onConsoleLine: () => undefined,
      onState: () => undefined,
      onDied: (role, reason) => say(`fleetlab up: ${role} died: ${reason}`),
      onLost: (why) => abort.abort(why),
      output: (l) => process.stderr.write(`${l}\n`),
    });
    if ('skip' in got) throw new ConfigurationError(`fleetlab up: ${got.skip}`);
    cm = got;
    const names = Object.keys(cm.machines);
    say(`fleetlab up: starting ${names.join(', ')} (${c.variant})${store ? ', warm where a snapshot of their shape is cached' : ''}; logs in ${outputDir}`);
    const t0 = Date.now();
    await startMachines(cm.machines, 'shell', { signal: abort.signal, snapshots: store, warmTurn: 0, healthy: new Set(), output: (l) => process.stderr.write(`${l}\n`) });
    store?.release(0);
    const list = Object.values(cm.machines);
    const starts = list.map((m) => `${m.name} ${m.facts?.kind === 'vm' && m.facts.start ? `${m.facts.start.mode} ${(m.facts.start.ms / 1000).toFixed(1)} s` : 'booted'}`);
    say(`fleetlab up: ${list.length} machine${list.length === 1 ? '' : 's'} up in ${((Date.now() - t0) / 1000).toFixed(1)} s (${starts.join(', ')})`);
    await repl(c, cm.machines, fabric, id, outputDir, abort.signal, say);
  } finally {
    if (cm) await releaseMachines(cm, { output: (l) => process.stderr.write(`${l}\n`) });
    await fabric?.close();
    await store?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  say('fleetlab up: the machines are stopped');
  return signalled ? 130 : 0;
}

/** The REPL over the machines, until Ctrl-D, the end of stdin or a signal. */
async function repl(c: PlannedCase, machines: Record<string, ManagedMachine>, fabric: Fabric | undefined, id: string, outputDir: string, signal: AbortSignal, say: (l: string) => void): Promise<void> {
  const list = Object.values(machines);
  const bindings: Record<string, unknown> = { machines: list, net: fabricHandle(fabric, () => machines) };
  for (const m of list) if (bindable(m.name, bindings)) bindings[m.name] = m;
  const terminal = !!process.stdin.isTTY && !!process.stdout.isTTY;
  const nets = Object.keys(c.scenario.networks ?? {});
  const session = openReplSession({
    id,
    kind: 'up',
    title: `fleetlab up ${c.variant}: ${list.map((m) => m.name).join(', ')}`,
    outputDir,
    machines: list,
    bindings,
    prompt: 'fleetlab up> ',
    commands: {},
    local: { terminal },
    banner: `fleetlab up ${id}${nets.length ? `: on ${nets.map((n) => `${n} (${list.map((m) => `${m.name} ${m.address(n)}`).join(', ')})`).join('; ')}` : ''}`,
    hint: `  the REPL has machines (${list.map((m, i) => `[${i}] ${m.name}`).join(', ')}), each by name, and net bound; Ctrl-D stops them all; fleetlab attach ${id} from another terminal`,
    greeting: `attached to ${id} (fleetlab up); Ctrl-D detaches\n`,
    say,
  });
  const stopped = new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  await Promise.race([session.ended, stopped]);
  session.close();
}

/** The machines to start, as a case: `--count` of a profile on `--net` LANs, or a scenario file's machines. */
async function upCase(a: UpArgs): Promise<PlannedCase> {
  const extraNets = a.net ?? [];
  if (/\.[cm]?[jt]s$/.test(a.target) && existsSync(a.target)) {
    if (a.count !== undefined) throw new ConfigurationError(`fleetlab up ${a.target}: --count is for a profile; a scenario's machines are its own`, { details: { field: 'count' } });
    const cases = await planRun({ paths: [a.target], grep: a.grep });
    if (cases.length !== 1) throw new ConfigurationError(`fleetlab up ${a.target}: ${cases.length ? `${cases.length} cases (${cases.map((x) => x.id).join(', ')}); pick one with --grep` : 'no case matched --grep'}`, { details: { field: 'grep' } });
    const c = cases[0]!;
    const roles = Object.keys(c.profiles);
    const networks: Record<string, NetworkSpec> = { ...c.scenario.networks, ...Object.fromEntries(extraNets.map((n) => [n, roles])) };
    Fabric.validate(networks, roles, `fleetlab up ${a.target}`);
    return { ...c, scenario: { ...c.scenario, networks: Object.keys(networks).length ? networks : undefined, ssh: a.ssh || c.scenario.ssh } };
  }
  const count = a.count ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new ConfigurationError(`fleetlab up: --count ${a.count}: expected a whole number from 1 to 64`, { details: { field: 'count', value: a.count } });
  if (!/^[a-z][a-z0-9-]*$/.test(a.name)) throw new ConfigurationError(`fleetlab up: --name ${JSON.stringify(a.name)}: use lower-case letters, digits and - (it is a hostname)`, { details: { field: 'name', value: a.name } });
  const profile = await loadProfile(a.target);
  const roles = Array.from({ length: count }, (_, i) => `${a.name}${i + 1}`);
  const networks: Record<string, NetworkSpec> = Object.fromEntries(extraNets.map((n) => [n, roles]));
  Fabric.validate(networks, roles, 'fleetlab up');
  const def = scenario({ name: 'up', machines: Object.fromEntries(roles.map((r) => [r, profile.name])), networks: extraNets.length ? networks : undefined, ssh: a.ssh, async run() {} });
  return { id: `up[${profile.name}]`, file: resolve('fleetlab-up'), scenario: def, variant: `${count} × ${profile.name}`, profiles: Object.fromEntries(roles.map((r) => [r, profile])) };
}
