// fleetlab gate: the latest run (or --run) judged against the run history and the known-failures file, by policy.
// Exit 0: nothing fatal; 1: something the policy names; 2: no history, no run, or bad options.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { DEFAULT_POLICY, gate, type GatePolicy } from '../history/gate.ts';
import type { FailureClass } from '../history/history.ts';
import { loadDefaultKnownFailures } from '../history/known-failures.ts';
import { FAILURE_CLASSES } from '../runner/results.ts';
import { historyLocation, openHistory } from '../history/open-history.ts';

export interface GateArgs {
  history?: string;
  knownFailures?: string;
  run?: string;
  failOn?: string[];
  maxInfraErrors?: number;
  window?: number;
  json?: boolean;
}

export async function gateCommand(a: GateArgs): Promise<number> {
  const failOn = (a.failOn ?? DEFAULT_POLICY.failOn).flatMap((c) => c.split(',')).map((c) => c.trim()).filter(Boolean);
  const unknown = failOn.find((c) => !FAILURE_CLASSES.includes(c as FailureClass));
  if (unknown !== undefined) throw new ConfigurationError(`--fail-on ${JSON.stringify(unknown)}: expected some of ${FAILURE_CLASSES.join(', ')}.`);
  const policy: GatePolicy = { failOn: failOn as FailureClass[], maxInfrastructureErrors: a.maxInfraErrors ?? DEFAULT_POLICY.maxInfrastructureErrors, window: a.window ?? DEFAULT_POLICY.window };
  if (!(Number.isInteger(policy.maxInfrastructureErrors) && policy.maxInfrastructureErrors >= 0)) throw new ConfigurationError(`--max-infra-errors ${policy.maxInfrastructureErrors}: expected a whole number >= 0.`);
  if (!(Number.isInteger(policy.window) && policy.window >= 1)) throw new ConfigurationError(`--window ${policy.window}: expected a whole number >= 1 (earlier runs).`);
  const known = loadDefaultKnownFailures(a.knownFailures);
  const location = historyLocation(a.history);
  if (location === 'none') throw new ConfigurationError('fleetlab gate needs a run history; --history none gives it none');
  const store = (await openHistory(location, { existing: true }))!;
  try {
    const v = await gate(store, known, policy, a.run);
    if (!v) throw new ConfigurationError(a.run ? `run ${a.run} is not in the history ${store.where}` : `the history ${store.where} has no run yet`);
    console.log(a.json ? JSON.stringify({ pass: v.pass, runId: v.run.runId, commit: v.run.commit, fatal: v.fatal, cases: v.classified.map(({ known: k, ...c }) => ({ ...c, bug: k?.bug })) }, null, 2) : v.text);
    return v.pass ? 0 : 1;
  } finally {
    await store.close();
  }
}
