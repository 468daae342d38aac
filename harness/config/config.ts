// fleetlab.config.ts: a project's defaults for `fleetlab run` and `list` (workers, retries, reporters, output, timeout
// scale, warm starts, lab, history, inputs, which cases), the gate's policy, and named projects that override them
// (`--project nightly`). Found in the working directory or named with --config; a command-line option overrides it, a
// project overrides the file's top level. Checked with zod before anything boots: a bad key or value names the file,
// the key and what is expected.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { FAILURE_CLASSES } from '../runner/results.ts';

const Gate = z
  .object({
    failOn: z.array(z.enum(FAILURE_CLASSES)).optional(),
    maxInfraErrors: z.number().int().min(0).optional(),
    window: z.number().int().min(1).optional(),
  })
  .strict();

const Run = z
  .object({
    /** Scenario files or folders (default scenarios/). */
    paths: z.array(z.string().min(1)).optional(),
    grep: z.string().optional(),
    tag: z.array(z.string()).optional(),
    /** The matrix: profiles (or board:/tag: of the lab) every scenario runs on. */
    machine: z.array(z.string().min(1)).optional(),
    workers: z.number().int().min(1).optional(),
    retries: z.number().int().min(0).optional(),
    repeatEach: z.number().int().min(1).optional(),
    reporter: z.array(z.enum(['console', 'junit', 'json', 'html'])).optional(),
    output: z.string().min(1).optional(),
    timeoutScale: z.number().positive().optional(),
    accel: z.enum(['auto', 'kvm', 'tcg', 'hvf']).optional(),
    warm: z.boolean().optional(),
    checkpoints: z.boolean().optional(),
    keepSnapshots: z.string().min(1).optional(),
    /** How long a pause without a terminal waits for `fleetlab attach` ('15m'). */
    pauseTimeout: z.string().min(1).optional(),
    lab: z.string().min(1).optional(),
    labDb: z.string().min(1).optional(),
    history: z.string().min(1).optional(),
    knownFailures: z.string().min(1).optional(),
    /** Folders of the project's machine profiles (relative to the config file), searched after $FLEETLAB_MACHINES. */
    machinesDirs: z.array(z.string().min(1)).optional(),
    /** ctx.inputs of every case; --input NAME=VALUE overrides one. */
    inputs: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a letter or _, then letters, digits, _ . -'), z.string()).optional(),
    gate: Gate.optional(),
  })
  .strict();

const Config = Run.extend({ projects: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), Run).optional() }).strict();

/** What a project sets: run and list defaults, and the gate's policy. */
export type RunDefaults = z.infer<typeof Run>;
/** fleetlab.config.ts's default export. */
export type FleetlabConfig = z.infer<typeof Config>;

/** Types a config file's object (it is returned as given): `export default defineConfig({ workers: 1, ... })`. */
export function defineConfig(config: FleetlabConfig): FleetlabConfig {
  return config;
}

/** The defaults in force: the file's top level with the project's on top, and where they came from. */
export interface LoadedConfig {
  file?: string;
  project?: string;
  defaults: RunDefaults;
}

export const CONFIG_FILES = ['fleetlab.config.ts', 'fleetlab.config.js', 'fleetlab.config.mjs'];

/**
 * Loads `file` (--config), else the first of CONFIG_FILES in `cwd`; none is an empty config. `project` (--project)
 * must be one of its projects.
 */
export async function loadConfig(opts: { file?: string; project?: string; cwd?: string }): Promise<LoadedConfig> {
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.file ? resolve(cwd, opts.file) : CONFIG_FILES.map((f) => resolve(cwd, f)).find((f) => existsSync(f));
  if (opts.file && !existsSync(file!)) throw new ConfigurationError(`--config ${opts.file}: no such file`, { details: { field: 'config', value: opts.file } });
  if (!file) {
    if (opts.project) throw new ConfigurationError(`--project ${opts.project}: there is no fleetlab.config.ts here (${cwd}) to define it; write one (fleetlab init does) or pass --config FILE`);
    return { defaults: {} };
  }
  let raw: unknown;
  try {
    raw = ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
  } catch (err) {
    throw new ConfigurationError(`fleetlab config ${file} failed to load: ${(err as Error).message}`, { cause: err });
  }
  const parsed = Config.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}` : i.message}`);
    throw new ConfigurationError(`fleetlab config ${file}: ${issues.join('; ')} (export default defineConfig({ ... }) with the keys of docs/config.md)`, { details: { file } });
  }
  const { projects, ...data } = parsed.data;
  const dirs = (d: RunDefaults) => (d.machinesDirs ? { ...d, machinesDirs: d.machinesDirs.map((m) => resolve(dirname(file), m)) } : d);
  const base = dirs(data);
  if (!opts.project) return { file, defaults: base };
  const p = projects?.[opts.project];
  if (!p) throw new ConfigurationError(`--project ${opts.project}: ${file} has ${Object.keys(projects ?? {}).length ? `the projects ${Object.keys(projects!).join(', ')}` : 'no projects'}`, { details: { field: 'project', value: opts.project } });
  return { file, project: opts.project, defaults: { ...base, ...dirs(p), inputs: { ...base.inputs, ...p.inputs }, gate: { ...base.gate, ...p.gate } } };
}

/** The config's profile folders join the search path ($FLEETLAB_MACHINES first: set for this invocation). */
export function useMachinesDirs(defaults: RunDefaults): void {
  if (!defaults.machinesDirs?.length) return;
  const env = (process.env.FLEETLAB_MACHINES ?? '').split(':').filter(Boolean);
  process.env.FLEETLAB_MACHINES = [...env, ...defaults.machinesDirs].join(':');
}

/** `--config FILE` and `--project NAME` (or `--x=y`) from argv, read before the commands' options take their defaults. */
export function configArgs(argv: string[]): { file?: string; project?: string } {
  const get = (name: string) => {
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === `--${name}`) return argv[i + 1];
      if (argv[i]!.startsWith(`--${name}=`)) return argv[i]!.slice(name.length + 3);
    }
    return undefined;
  };
  return { file: get('config'), project: get('project') };
}
