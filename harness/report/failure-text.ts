// A failure as the console reporter prints it, the way vitest and Playwright do: the failing step, the message (with
// node:assert's diff), expected and actual where the message lacks them, the scenario's source line with a code
// frame, and each machine's last console lines where the message does not quote them already.
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { AttemptResult, StepResult } from '../runner/results.ts';
import { inspect } from 'node:util';

/** Lines of context around the failing line in the code frame. */
const CONTEXT = 2;
/** Console lines quoted per machine. */
const CONSOLE_LINES = 5;

export interface FailureTextOptions {
  paint(code: string, s: string): string;
  cwd?: string;
}

/** The lines under a failed case's result line (indented by the caller). */
export function failureText(attempt: AttemptResult, o: FailureTextOptions): string[] {
  const err = attempt.error;
  if (!err) return [];
  const out: string[] = [];
  const step = failedStep(attempt.steps);
  if (step) out.push(`${o.paint('1', 'in step:')} ${step.join(' › ')}`);
  out.push(...err.message.split('\n'));
  if ((err.expected !== undefined || err.actual !== undefined) && !/^[+-] /m.test(err.message)) {
    out.push(`${o.paint('32', 'expected:')} ${inspect(err.expected, { depth: 4, breakLength: 100 })}`);
    out.push(`${o.paint('31', 'actual:  ')} ${inspect(err.actual, { depth: 4, breakLength: 100 })}`);
  }
  if (err.location) out.push('', ...codeFrame(err.location, o));
  if (!/console lines:/.test(err.message)) {
    for (const m of attempt.machines) {
      const lines = tail(m.logPath, CONSOLE_LINES);
      if (!lines.length) continue;
      out.push('', o.paint('2', `${m.name}: last ${lines.length} console lines`), ...lines.map((l) => o.paint('2', `  | ${l}`)));
    }
  }
  return out;
}

/** The path of the innermost failed step, if a step failed. */
function failedStep(steps: StepResult[], path: string[] = []): string[] | undefined {
  for (const s of steps) {
    if (s.status !== 'failed') continue;
    return failedStep(s.steps, [...path, s.name]) ?? [...path, s.name];
  }
  return undefined;
}

/** "file:line:col" as a code frame: the line and two around it, numbered, with a caret under the column. */
export function codeFrame(location: string, o: FailureTextOptions): string[] {
  const m = /^(.*):(\d+):(\d+)$/.exec(location);
  if (!m || !existsSync(m[1]!)) return [location];
  const [file, line, col] = [m[1]!, Number(m[2]), Number(m[3])];
  const src = readFileSync(file, 'utf8').split('\n');
  const first = Math.max(1, line - CONTEXT);
  const last = Math.min(src.length, line + CONTEXT);
  const width = String(last).length;
  const frame = [o.paint('36', `❯ ${relative(o.cwd ?? process.cwd(), file)}:${line}:${col}`)];
  for (let n = first; n <= last; n++) {
    const text = src[n - 1]!.replace(/\t/g, '  ');
    const here = n === line;
    frame.push(`${here ? o.paint('31', '>') : ' '} ${o.paint('2', `${String(n).padStart(width)} |`)} ${here ? text : o.paint('2', text)}`);
    if (here) frame.push(`  ${' '.repeat(width)} ${o.paint('2', '|')} ${' '.repeat(Math.max(0, col - 1))}${o.paint('31', '^')}`);
  }
  return frame;
}

/** The last `n` non-empty lines the machine printed (fleetlab's own notes left out; the log's end only is read). */
function tail(path: string | undefined, n: number): string[] {
  if (!path || !existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  return text
    .slice(-65_536)
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.replace(/^\[[\s\d.]+\]./, '').trim() && !/^\[[\s\d.]+\]\*/.test(l))
    .slice(-n)
    .map((l) => (l.length > 160 ? `${l.slice(0, 159)}…` : l));
}
