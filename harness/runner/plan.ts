// Which cases a run has: scenario files loaded, scenarios × machine variants, filtered and sharded.
import { durationMs } from '../time/duration.ts';
import { createHash } from 'node:crypto';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { listProfiles, loadProfile } from '../qemu/profile-loader.ts';
import { applyBootOverride, hasBootOverride, type BootOverride } from '../qemu/boot-override.ts';
import { nicUnsupported, type MachineProfile } from '../qemu/profile.ts';
import { isScenario, type ScenarioDefinition } from './scenario.ts';
import { Fabric, networkMembers } from '../net/fabric.ts';
import { expandFleets } from './fleets.ts';
import type { BoardProvider } from './boards.ts';
import type { CaseRepeat } from './results.ts';

/** One scenario on one set of profiles: the unit that runs, retries and reports. */
export interface PlannedCase {
  id: string;
  file: string;
  scenario: ScenarioDefinition;
  /** "x86_64-direct", or "router=a,node=b" when roles differ. */
  variant: string;
  /** Role -> validated profile. */
  profiles: Record<string, MachineProfile>;
  /** Role -> the lab boards it may run on (from board:<name> or tag:<tag>), when it runs on a board. */
  boards?: Record<string, string[]>;
  /** Which of the case's runs this is (--repeat-each). */
  repeat?: CaseRepeat;
}

/** Whether case `c`'s machines start from snapshots: its scenario's snapshot option, else the run's --warm. */
export function startsWarm(c: PlannedCase, warm: boolean | undefined): boolean {
  return c.scenario.snapshot ? c.scenario.snapshot === 'boot' : !!warm;
}

/** What narrows a plan. */
export interface PlanOptions {
  paths: string[];
  grep?: string;
  tags?: string[];
  /** Run every scenario on each of these profiles ("all": every profile in machines/). */
  machines?: string[];
  /** "K/N". */
  shard?: string;
  /** Boot this instead of each profile's own boot (--image, --kernel, ...); paths relative to cwd. */
  boot?: BootOverride;
  cwd?: string;
  /** The lab for board:<name> and tag:<tag> machines (--lab). */
  lab?: BoardProvider;
  /** Run each case this many times (--repeat-each): ids "…[variant]#2"; repeats of a case stay in its shard. */
  repeatEach?: number;
}

/** Expands paths (files or directories) to scenario files. */
export function scenarioFiles(paths: string[], cwd = process.cwd()): string[] {
  const files: string[] = [];
  for (const p of paths.length ? paths : ['scenarios']) {
    const abs = resolve(cwd, p);
    if (!existsSync(abs)) throw new ConfigurationError(`Scenario path ${p} does not exist (resolved to ${abs}).`, { details: { path: p } });
    if (statSync(abs).isDirectory()) {
      for (const f of readdirSync(abs).sort()) if (f.endsWith('.ts') && !f.endsWith('.test.ts')) files.push(join(abs, f));
    } else files.push(abs);
  }
  return files;
}

/** Imports a scenario file and returns its scenarios; a file that fails to load or exports none is a configuration error. */
export async function loadScenarioFile(file: string, cwd = process.cwd()): Promise<ScenarioDefinition[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const e = err as Error;
    throw new ConfigurationError(`Scenario file ${relative(cwd, file)} failed to load: ${e.message}`, { cause: err, details: { file } });
  }
  const found: ScenarioDefinition[] = [];
  for (const v of Object.values(mod)) {
    if (isScenario(v)) found.push(v);
    else if (Array.isArray(v)) found.push(...v.filter(isScenario));
  }
  const unique = [...new Set(found)];
  if (!unique.length) throw new ConfigurationError(`Scenario file ${relative(cwd, file)} exports no scenario: export const x = scenario({ ... }) from 'fleetlab'.`, { details: { file } });
  const names = new Set<string>();
  return unique.map((s) => {
    const where = `${relative(cwd, file)}: scenario ${JSON.stringify(s.name)}`;
    if (typeof s.name !== 'string' || !s.name.trim()) throw new ConfigurationError(`${relative(cwd, file)}: a scenario has no name.`, { details: { file, field: 'name' } });
    if (names.has(s.name)) throw new ConfigurationError(`${where} is declared twice; scenario names are unique per file.`, { details: { file, field: 'name' } });
    names.add(s.name);
    if (typeof s.run !== 'function') throw new ConfigurationError(`${where} has no run function.`, { details: { file, field: 'run' } });
    if (!s.machines || typeof s.machines !== 'object' || !Object.keys(s.machines).length) throw new ConfigurationError(`${where}: machines must map at least one role to a profile, e.g. { main: 'x86_64-direct' }.`, { details: { file, field: 'machines' } });
    if (s.setup !== undefined) {
      const st = s.setup as { checkpoint?: unknown; run?: unknown } | null;
      if (typeof st?.checkpoint !== 'string' || !st.checkpoint.trim()) throw new ConfigurationError(`${where}: setup.checkpoint must name the state its steps reach, e.g. setup: { checkpoint: 'generation 2 switched', run: async (ctx) => { ... } }.`, { details: { file, field: 'setup.checkpoint' } });
      if (typeof st.run !== 'function') throw new ConfigurationError(`${where}: setup has no run function (setup: { checkpoint: ${JSON.stringify(st.checkpoint)}, run: async (ctx) => { ... } }).`, { details: { file, field: 'setup.run' } });
    }
    if (s.timeout !== undefined) {
      try {
        durationMs(s.timeout, 'timeout');
      } catch (err) {
        throw new ConfigurationError(`${where}: ${(err as Error).message}.`, { details: { file, field: 'timeout' } });
      }
    }
    return expandFleets(s, where, dirname(resolve(cwd, file)));
  });
}

/** A role's request once boards are written as profiles "board:<name>" / "tag:<tag>". */
type ProfileRequest = { profile: string } & BootOverride;

/** The cases of a run, in a stable order, filtered and sharded; every profile is loaded and validated before anything boots. */
export async function planRun(opts: PlanOptions): Promise<PlannedCase[]> {
  const cwd = opts.cwd ?? process.cwd();
  const machineList = opts.machines ? [...new Set(opts.machines.flatMap((m) => (m === 'all' ? listProfiles() : [m])))] : undefined;
  const profileCache = new Map<string, Promise<MachineProfile>>();
  const profile = (name: string) => {
    if (!profileCache.has(name)) profileCache.set(name, loadProfile(name));
    return profileCache.get(name)!;
  };
  const grep = opts.grep ? safeRegExp(opts.grep) : undefined;
  const cases: PlannedCase[] = [];
  for (const file of scenarioFiles(opts.paths, cwd)) {
    const rel = relative(cwd, file);
    for (const s of await loadScenarioFile(file, cwd)) {
      const requested: Record<string, ProfileRequest> = {};
      for (const [role, r] of Object.entries(s.machines)) {
        const board = typeof r === 'object' && r !== null ? (r as { board?: unknown }).board : undefined;
        if (typeof r !== 'string' && typeof (r as { profile?: unknown } | null)?.profile !== 'string' && typeof board !== 'string') throw new ConfigurationError(`${rel}: scenario ${JSON.stringify(s.name)}, machines.${role}: expected a profile name, { profile: 'name', memoryMiB?, testbed?, image?, kernel?, initrd?, dtb?, append? } or { board: 'tag:<tag>' | 'board:<name>' }, got ${JSON.stringify(r)}.`, { details: { file: rel, field: `machines.${role}` } });
        requested[role] = typeof r === 'string' ? { profile: r } : typeof board === 'string' ? { profile: /^(board|tag):/.test(board) ? board : `board:${board}` } : (r as ProfileRequest);
      }
      if (s.networks !== undefined) Fabric.validate(s.networks, Object.keys(s.machines), `${rel}: scenario ${JSON.stringify(s.name)}, networks`);
      const variants: Record<string, ProfileRequest>[] = machineList?.length
        ? machineList.map((m) => Object.fromEntries(Object.entries(requested).map(([role, r]) => [role, { ...r, profile: m }])))
        : [requested];
      for (const requests of variants) {
        const profiles: Record<string, MachineProfile> = {};
        const roles: Record<string, string> = {};
        const boards: Record<string, string[]> = {};
        for (const [role, req] of Object.entries(requests)) {
          const { profile: name, memoryMiB, ...own } = req as ProfileRequest & { memoryMiB?: unknown };
          roles[role] = name;
          if (/^(board|tag):/.test(name)) {
            // A lab board: its profile is what the scenario sees; which board of the selector is decided at lease time.
            if (!opts.lab) throw new ConfigurationError(`${rel}: scenario ${JSON.stringify(s.name)}, machine ${role} is "${name}", a lab board: give the lab with --lab <lab file> (see lab/example-virtual.ts).`, { details: { file: rel, field: `machines.${role}` } });
            boards[role] = opts.lab.candidates(name);
            profiles[role] = await opts.lab.profileOf(boards[role][0]!);
            continue;
          }
          try {
            let p = await profile(name);
            p = applyBootOverride(p, own, dirname(file), `${rel}, machine ${role}`);
            if (hasBootOverride(opts.boot)) p = applyBootOverride(p, opts.boot, cwd, 'the run\'s --image/--kernel options');
            if (memoryMiB !== undefined) {
              if (typeof memoryMiB !== 'number' || !Number.isInteger(memoryMiB) || memoryMiB < 64) throw new ConfigurationError(`memoryMiB: ${JSON.stringify(memoryMiB)} is no memory size; give whole MiB, at least 64`, { details: { field: `machines.${role}.memoryMiB`, value: memoryMiB } });
              p = { ...p, qemu: { ...p.qemu, memoryMiB } };
            }
            profiles[role] = p;
          } catch (err) {
            throw new ConfigurationError(`${rel}: scenario ${JSON.stringify(s.name)}, machine ${role}: ${(err as Error).message}`, { cause: err, details: { file: rel, field: `machines.${role}` } });
          }
        }
        for (const [role, p] of Object.entries(profiles)) {
          const on = Object.entries(s.networks ?? {}).filter(([, spec]) => networkMembers(spec).includes(role)).map(([n]) => n);
          const noNic = (on.length || s.ssh || s.hostLink) && !boards[role] ? nicUnsupported(p) : undefined;
          if (noNic) throw new ConfigurationError(`${rel}: scenario ${JSON.stringify(s.name)}, machine ${role} (profile ${p.name}) is ${on.length ? `on network ${on.join(', ')}` : 'given a host link (ssh/hostLink)'}, but ${noNic}.`, { details: { file: rel, field: `machines.${role}` } });
        }
        const names = [...new Set(Object.values(roles))];
        const variant = names.length === 1 ? names[0]! : Object.entries(roles).map(([r, n]) => `${r}=${n}`).join(',');
        cases.push({ id: `${rel}::${s.name}[${variant}]`, file: rel, scenario: s, variant, profiles, ...(Object.keys(boards).length ? { boards } : {}) });
      }
    }
  }
  let selected = cases.filter((c) => (!grep || grep.test(`${c.scenario.name} [${c.variant}]`) || grep.test(c.id)) && (!opts.tags?.length || opts.tags.some((t) => c.scenario.tags?.includes(t))));
  if (opts.shard) {
    const { k, n } = parseShard(opts.shard);
    selected = selected.filter((c) => shardOf(c.id, n) === k - 1);
  }
  const n = opts.repeatEach ?? 1;
  if (n > 1) selected = selected.flatMap((c) => Array.from({ length: n }, (_, i) => ({ ...c, id: `${c.id}#${i + 1}`, repeat: { index: i + 1, of: n, caseId: c.id } })));
  return selected;
}

/** "2/4" -> { k: 2, n: 4 }; a configuration error otherwise. */
export function parseShard(s: string): { k: number; n: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  const k = Number(m?.[1]);
  const n = Number(m?.[2]);
  if (!m || n < 1 || k < 1 || k > n) throw new ConfigurationError(`--shard ${JSON.stringify(s)} is not K/N with 1 <= K <= N (e.g. --shard 2/4).`, { details: { field: 'shard', value: s } });
  return { k, n };
}

/** The shard (0-based) of a stable case id: the same id lands in the same shard on every machine. */
export function shardOf(id: string, n: number): number {
  return createHash('sha256').update(id).digest().readUInt32BE(0) % n;
}

function safeRegExp(s: string): RegExp {
  try {
    return new RegExp(s);
  } catch (err) {
    throw new ConfigurationError(`--grep ${JSON.stringify(s)} is not a valid regular expression: ${(err as Error).message}`, { details: { field: 'grep', value: s } });
  }
}
