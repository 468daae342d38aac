// Scenario files and user profiles import 'fleetlab' and 'fleetlab/machines/<name>'. This makes those names mean the
// very fleetlab that runs them: the checkout's .ts sources when the CLI runs from a checkout (whose package.json
// exports point at the compiled dist/ that a checkout does not build), the package when it runs from a package. One
// fleetlab per process, so a scenario's scenario() and errors are the runner's own.
// And a .ts scenario or profile written as an ES module (import/export) loads as one even in a package whose
// package.json says "type": "commonjs", which `npm init` writes by default: Node would refuse its import statements.
import { existsSync, readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { API_MODULE } from '../package-files.ts';
import { BUILTIN_MACHINES_DIR } from '../qemu/profile-loader.ts';

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === 'fleetlab') return { url: pathToFileURL(API_MODULE).href, shortCircuit: true };
    const m = /^fleetlab\/machines\/([\w.-]+)$/.exec(specifier);
    if (m) {
      const file = [join(BUILTIN_MACHINES_DIR, `${m[1]}.ts`), join(BUILTIN_MACHINES_DIR, `${m[1]}.js`)].find((f) => existsSync(f));
      if (file) return { url: pathToFileURL(file).href, shortCircuit: true };
    }
    return nextResolve(specifier, context);
  },
  load(url, context, nextLoad) {
    const loaded = nextLoad(url, context);
    if (loaded.format !== 'commonjs-typescript' || !url.startsWith('file:') || url.includes('/node_modules/')) return loaded;
    const source = loaded.source ?? readFileSync(fileURLToPath(url));
    return ESM_SYNTAX.test(String(source)) ? { format: 'module-typescript', source, shortCircuit: true } : loaded;
  },
});

/** A line that starts with an import or export statement: the file is an ES module, whatever its package says. */
const ESM_SYNTAX = /^\s*(import\s*[\w{*'"]|export\s)/m;
