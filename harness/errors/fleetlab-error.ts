// One error family whose kind tells reporters and retries what went wrong.
import { formatMs } from '../time/format.ts';

/** What a timeout message reads of a deadline (time/deadline.ts's Deadline): the budget that bound it. */
export interface TimedBudget {
  binding(): { budgetMs: number; label: string; hint?: string | undefined };
}

/**
 * - test-failure: an assertion or a command that failed; never retried.
 * - infrastructure: QEMU died, a board is unreachable, firmware missing; what retries retry.
 * - configuration: bad input, with the file and field; reported before anything boots.
 * - harness-bug: fleetlab itself is wrong.
 */
export type ErrorKind = 'test-failure' | 'infrastructure' | 'configuration' | 'harness-bug';

/** Base of every error fleetlab throws on purpose. */
export class FleetlabError extends Error {
  readonly kind: ErrorKind;
  /** Structured facts for reporters (machine, command, file, field, ...). */
  readonly details: Record<string, unknown>;

  constructor(kind: ErrorKind, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    this.details = opts.details ?? {};
    this.name = new.target.name;
  }
}

/** An assertion or a guest command failed. */
export class TestFailure extends FleetlabError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('test-failure', message, opts);
  }
}

/** Something under the test broke: QEMU, a board, firmware, a console. */
export class InfrastructureError extends FleetlabError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('infrastructure', message, opts);
  }
}

/** Bad input: names the file, field or value and what to do. */
export class ConfigurationError extends FleetlabError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('configuration', message, opts);
  }
}

/** fleetlab broke an invariant of its own. */
export class HarnessBug extends FleetlabError {
  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('harness-bug', message, opts);
  }
}

/** A wait whose deadline expired: names the budget, what was awaited and the last console lines. */
export class TimeoutError extends FleetlabError {
  constructor(
    kind: ErrorKind,
    opts: { awaited: string; deadline: TimedBudget; machine?: string; lastLines?: string[]; hint?: string; cause?: unknown },
  ) {
    const budget = opts.deadline.binding();
    const lines = opts.lastLines ?? [];
    const hint = opts.hint ?? budget.hint;
    const message = [
      `Timed out${opts.machine ? ` on ${opts.machine}` : ''} after ${formatMs(budget.budgetMs)} (budget: ${budget.label}) waiting for ${opts.awaited}.`,
      hint ? `To allow more time: ${hint}.` : undefined,
      lines.length ? `Last ${lines.length} console lines:\n${lines.map((l) => `  | ${l}`).join('\n')}` : 'No console output was received.',
    ]
      .filter(Boolean)
      .join('\n');
    super(kind, message, {
      cause: opts.cause,
      details: { awaited: opts.awaited, budget: budget.label, budgetMs: budget.budgetMs, machine: opts.machine, lastLines: lines },
    });
  }
}

/** A guest command that failed: machine, command, exit code, duration and the tail of its output. */
export class CommandError extends TestFailure {
  readonly exitCode: number;
  constructor(opts: { machine: string; command: string; exitCode: number; durationMs: number; output: string; expected: string; budget?: string; timedOut?: boolean; budgetMs?: number }) {
    const tail = tailLines(opts.output, 20);
    const timedOut = opts.timedOut
      ? ` (killed by fleetlab in the guest when its time ran out: ${opts.budgetMs ? `${formatMs(opts.budgetMs)} given` : 'budget'}${opts.budget ? `, budget ${opts.budget}` : ''})`
      : opts.exitCode === 124
        ? ' (the command itself exited 124; fleetlab did not time it out)'
        : '';
    super(
      `Command on ${opts.machine} ${opts.expected}, but it exited with ${opts.exitCode}${timedOut} after ${formatMs(opts.durationMs)}:\n  $ ${opts.command}\n${tail ? `Output (last lines):\n${tail.split('\n').map((l) => `  | ${l}`).join('\n')}` : 'It printed nothing.'}`,
      { details: { machine: opts.machine, command: opts.command, exitCode: opts.exitCode, durationMs: opts.durationMs, outputTail: tail, timedOut: !!opts.timedOut } },
    );
    this.exitCode = opts.exitCode;
  }
}

/** The last `n` lines of `text`, without a trailing empty line. */
export function tailLines(text: string, n: number): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.slice(-n).join('\n');
}

/** The kind of any thrown value: a FleetlabError's own, else harness-bug. */
export function errorKind(err: unknown): ErrorKind {
  return err instanceof FleetlabError ? err.kind : 'harness-bug';
}
