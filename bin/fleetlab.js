#!/usr/bin/env node
// The `fleetlab` command of the npm package (npx fleetlab, node_modules/.bin/fleetlab). Plain JavaScript that any
// Node can read: fleetlab itself needs Node >= 22.18, which strips the types of the user's .ts scenarios and profiles.
// Under npx or an npm script the pinned Node that fleetlab depends on (npm package node-<os>-<arch>) is first on PATH;
// run some other way by an older Node, this re-runs itself on that pinned Node, or says what to install.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NEEDED = [22, 18];
const self = fileURLToPath(import.meta.url);
const root = join(dirname(self), '..');
const [major, minor] = process.versions.node.split('.').map(Number);

if (major > NEEDED[0] || (major === NEEDED[0] && minor >= NEEDED[1])) {
  // An installed package runs its compiled JavaScript; a checkout (npm link, file: installs) runs its sources.
  const compiled = join(root, 'dist/harness/cli/main.js');
  await import(pathToFileURL(existsSync(compiled) ? compiled : join(root, 'harness/cli/main.ts')).href);
} else {
  const pinned = pinnedNode();
  if (!pinned) {
    console.error(
      `fleetlab needs Node.js ${NEEDED.join('.')} or newer (it runs your .ts scenarios with Node's type stripping); this is ${process.version} (${process.execPath}).\n` +
        `  Install Node 24 (https://nodejs.org, or your distribution's nodejs package), or reinstall fleetlab so that npm\n` +
        `  fetches its pinned Node (the optional dependency node-${process.platform}-${process.arch}), and run it with npx fleetlab.`,
    );
    process.exit(2);
  }
  // Signals reach the child, which ends its machines and writes its reports; this process exits as the child did.
  const child = spawn(pinned, [self, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + ({ SIGINT: 2, SIGHUP: 1, SIGKILL: 9 }[signal] ?? 15)));
}

/** The Node binary of the npm package fleetlab pins (node-<os>-<arch>), if npm installed it. */
function pinnedNode() {
  const require = createRequire(import.meta.url);
  for (const pkg of [`node-${process.platform}-${process.arch}`, 'node']) {
    try {
      const bin = join(dirname(require.resolve(`${pkg}/package.json`)), 'bin/node');
      if (existsSync(bin)) return bin;
    } catch {
      // not installed
    }
  }
  return undefined;
}
