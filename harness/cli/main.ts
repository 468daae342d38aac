#!/usr/bin/env node
// fleetlab's command line: yargs commands over the runner, reports and providers.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { FleetlabError } from '../errors/fleetlab-error.ts';
import { formatDoctor, runDoctor } from '../doctor/doctor.ts';
import { ensureTestbed } from '../../machines/testbed/build.ts';
import { testbedRecipes } from '../../machines/testbed/index.ts';

/** Exit codes: 0 passed, 1 test failure, 2 configuration or usage error, 3 infrastructure error, 130 interrupted. */
export const EXIT = { ok: 0, testFailure: 1, usage: 2, infrastructure: 3, interrupted: 130 } as const;

await yargs(hideBin(process.argv))
  .scriptName('fleetlab')
  .usage('$0 <command> [options]\n\nVM test harness and hardware-in-the-loop lab runner for NixOS device fleets.')
  .command(
    'doctor',
    'Report what this host can do: QEMU per architecture, firmware, tools, and acceleration probed for real',
    (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' }).option('refresh', { type: 'boolean', default: false, describe: 'Probe acceleration again instead of using the cached answer' }),
    async (argv) => {
      const report = await runDoctor({ refresh: argv.refresh });
      console.log(argv.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      process.exitCode = report.problems.length ? 1 : 0;
    },
  )
  .command(
    'images build [names..]',
    'Build the testbed guest images from Debian packages (cached by a hash of their recipe and inputs)',
    (y) =>
      y
        .positional('names', { type: 'string', array: true, describe: `Testbeds to build (default: all: ${Object.keys(testbedRecipes).join(', ')})` })
        .option('rebuild', { type: 'boolean', default: false, describe: 'Build even if the cache has the image' }),
    async (argv) => {
      const names = argv.names?.length ? argv.names : Object.keys(testbedRecipes);
      for (const n of names) {
        const recipe = testbedRecipes[n];
        if (!recipe) throw new FleetlabError('configuration', `unknown testbed "${n}"; have: ${Object.keys(testbedRecipes).join(', ')}`);
        const img = await ensureTestbed(recipe, { rebuild: argv.rebuild, log: (l) => console.error(l) });
        console.log(`${n}: ${img.dir}`);
      }
    },
  )
  .demandCommand(1, 'Name a command; see fleetlab --help.')
  .strict()
  .fail((msg, err, y) => {
    if (err) throw err;
    console.error(`${msg}\n\nRun "fleetlab --help" for usage.`);
    process.exit(EXIT.usage);
  })
  .help()
  .parseAsync()
  .catch((err: unknown) => {
    if (err instanceof FleetlabError) {
      console.error(`fleetlab: ${err.kind} error: ${err.message}`);
      process.exit(err.kind === 'configuration' ? EXIT.usage : err.kind === 'infrastructure' ? EXIT.infrastructure : EXIT.testFailure);
    }
    console.error(err);
    process.exit(EXIT.infrastructure);
  });
