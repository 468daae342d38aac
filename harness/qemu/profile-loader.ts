// Finds profiles by name in machines/ (or a directory the user names) and validates them.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { profileSchema, type MachineProfile } from './profile.ts';

/** fleetlab's own machines/ directory (dist/machines in an installed package, whose profiles are compiled .js). */
export const BUILTIN_MACHINES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../machines');

/** A profile file: a .ts (or, for fleetlab's compiled built-ins, .js) module that is not a test or a declaration. */
const PROFILE_FILE = /^(?!.*\.(test|d)\.[jt]s$).*\.[jt]s$/;

/**
 * Directories searched for profiles, first match wins: `extra`, $FLEETLAB_MACHINES (colon-separated), the current
 * directory's machines/ (a fleet repository's own profiles), then fleetlab's built-in ones.
 */
export function machineDirs(extra: string[] = []): string[] {
  const env = (process.env.FLEETLAB_MACHINES ?? '').split(':').filter(Boolean);
  const own = resolve('machines');
  return [...new Set([...extra, ...env, ...(existsSync(own) ? [own] : []), BUILTIN_MACHINES_DIR])];
}

/** Names of every profile found. */
export function listProfiles(dirs = machineDirs()): string[] {
  const names = new Set<string>();
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (PROFILE_FILE.test(f)) names.add(f.slice(0, -3));
  }
  return [...names].sort();
}

/** Loads profile `name` (or a path to a profile file), validating it; ConfigurationError names the file and field. */
export async function loadProfile(nameOrPath: string, dirs = machineDirs()): Promise<MachineProfile> {
  const file = /\.[jt]s$/.test(nameOrPath) ? resolve(nameOrPath) : dirs.flatMap((d) => [join(d, `${nameOrPath}.ts`), join(d, `${nameOrPath}.js`)]).find((f) => existsSync(f));
  if (!file || !existsSync(file)) {
    throw new ConfigurationError(
      `Unknown machine profile "${nameOrPath}". Known profiles: ${listProfiles(dirs).join(', ') || '(none)'}; searched ${dirs.join(', ')}. ` +
        'Add machines/<name>.ts exporting a profile (see machines/x86_64-direct.ts), or pass a path to one.',
      { details: { profile: nameOrPath } },
    );
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new ConfigurationError(`Machine profile ${file} failed to load: ${(err as Error).message}`, { cause: err, details: { file } });
  }
  return validateProfile(mod.default, file);
}

/** Validates profile data; `source` names where it came from in the error. */
export function validateProfile(data: unknown, source: string): MachineProfile {
  if (data === undefined) throw new ConfigurationError(`Machine profile ${source} has no default export; export default defineProfile({...}).`, { details: { file: source } });
  const parsed = profileSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(profile)'}: ${i.message}`).join('\n');
  throw new ConfigurationError(`Machine profile ${source} is invalid:\n${problems}`, { details: { file: source, issues: parsed.error.issues } });
}
