// Turns anything thrown into the ErrorInfo reports need, with the scenario file location where known.
import { FleetlabError } from '../errors/fleetlab-error.ts';
import type { ErrorInfo } from './results.ts';

/** Error data for reports. Assertion errors and errors thrown by scenario code are test failures. */
export function errorInfo(err: unknown, scenarioFile?: string): ErrorInfo {
  const e = err instanceof Error ? err : new Error(String(err));
  const kind = err instanceof FleetlabError ? err.kind : 'test-failure';
  const info: ErrorInfo = { kind, type: e.name, message: e.message, stack: e.stack };
  const anyErr = e as Error & { expected?: unknown; actual?: unknown };
  if ('expected' in anyErr) info.expected = anyErr.expected;
  if ('actual' in anyErr) info.actual = anyErr.actual;
  if (scenarioFile && e.stack) {
    const line = e.stack.split('\n').find((l) => l.includes(scenarioFile));
    const m = line && /((?:file:\/\/)?\/[^\s()]+:\d+:\d+)/.exec(line);
    if (m) info.location = m[1]!.replace(/^file:\/\//, '');
  }
  return info;
}
