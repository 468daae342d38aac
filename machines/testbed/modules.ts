// A kernel's module index as the testbed's builders read it: modules.dep, and module names as modprobe compares them.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

/** A module's name as modprobe compares it: '-' and '_' are the same character. */
export const moduleName = (name: string): string => name.replace(/-/g, '_');

/** The module name of a path in modules.dep or modules.builtin (kernel/net/batman-adv/batman-adv.ko.xz -> batman_adv). */
export const moduleNameOf = (path: string): string => moduleName(basename(path).replace(/\.ko(\.\w+)?$/, ''));

/** modules.dep of one modules directory: each module's path (relative to it) with the paths it depends on, and the path of each module name. */
export interface ModulesDep {
  deps: Map<string, string[]>;
  byName: Map<string, string>;
}

/** Reads `modDir`/modules.dep (as depmod writes it). */
export async function readModulesDep(modDir: string): Promise<ModulesDep> {
  const deps = new Map<string, string[]>();
  for (const line of (await readFile(join(modDir, 'modules.dep'), 'utf8')).split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod) deps.set(mod.trim(), (rest ?? '').trim().split(/\s+/).filter(Boolean));
  }
  return { deps, byName: new Map([...deps.keys()].map((p) => [moduleNameOf(p), p])) };
}
