// Where fleetlab's own files are. A checkout runs the .ts sources in place; an installed package runs the compiled
// dist/**/*.js (Node does not strip types under node_modules) and ships the sources and data files (the testbed's rootfs
// and guest scripts) beside dist/, so every path to them goes through sourceFile().
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const selfDir = dirname(self);

/** True when this fleetlab runs from its compiled dist/ (an installed package), false from the sources (a checkout). */
export const COMPILED = self.endsWith('.js') && basename(resolve(selfDir, '..')) === 'dist';

/** The package's root: the checkout, or node_modules/fleetlab. */
export const PACKAGE_ROOT = resolve(selfDir, COMPILED ? '../..' : '..');

const DIST = join(PACKAGE_ROOT, 'dist');

/** The source file of a module (give it `import.meta.url`): itself in a checkout, the shipped .ts beside dist/ in a package. */
export function sourceFile(moduleUrl: string): string {
  const file = fileURLToPath(moduleUrl);
  if (!file.startsWith(DIST + sep) || !file.endsWith('.js')) return file;
  return join(PACKAGE_ROOT, relative(DIST, file).replace(/\.js$/, '.ts'));
}

/** The directory of a module's source file, where its data files live. */
export function sourceDir(moduleUrl: string): string {
  return dirname(sourceFile(moduleUrl));
}

/** The module fleetlab's public API is in (harness/index.ts, or dist/harness/index.js in a package). */
export const API_MODULE = join(selfDir, COMPILED ? 'index.js' : 'index.ts');

/** A file of the package, by its path in the repository (scripts/setup.sh, nix/…); undefined when not shipped. */
export function packageFile(path: string): string | undefined {
  const p = join(PACKAGE_ROOT, path);
  return existsSync(p) ? p : undefined;
}

/** This fleetlab's version, from its package.json (not the fleet repository's, which is the nearest to the user). */
export const VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
