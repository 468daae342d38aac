// How a machine's life ends, as the errors its waits then throw: QEMU died (or a board's serial line closed), or it
// was stopped. A console check that fires is console-checks.ts's ConsoleCheckFired.
import { FleetlabError } from '../errors/fleetlab-error.ts';
import type { LifeEnd } from '../time/lifeline.ts';

function indent(lines: string[], mark = '  | '): string {
  return lines.map((l) => `${mark}${l}`).join('\n');
}

/** QEMU exited (or lost its QMP connection), or a board's serial line closed, while waits were pending. */
export class MachineDied implements LifeEnd {
  readonly machine: string;
  /** "QEMU exited unexpectedly (signal SIGKILL)". */
  readonly how: string;
  /** QEMU's stderr; undefined for a machine that has none (a board). */
  readonly stderr: string | undefined;
  readonly lastLines: () => string[];
  readonly exit: { exitCode: number | null; signal: string | null } | undefined;

  constructor(machine: string, how: string, stderr: string | undefined, lastLines: () => string[], exit: { exitCode: number | null; signal: string | null } | undefined) {
    this.machine = machine;
    this.how = how;
    this.stderr = stderr;
    this.lastLines = lastLines;
    this.exit = exit;
  }

  during(awaited: string): FleetlabError {
    const stderr = (this.stderr ?? '').trim().split('\n').filter(Boolean).slice(-10);
    const lines = this.lastLines();
    return new FleetlabError(
      'infrastructure',
      [
        `Machine ${this.machine} died while fleetlab waited for ${awaited}: ${this.how}.`,
        ...(this.stderr === undefined ? [] : [stderr.length ? `QEMU's stderr (last lines):\n${indent(stderr, '    ')}` : "QEMU's stderr was empty."]),
        lines.length ? `Last ${lines.length} console lines:\n${indent(lines)}` : 'No console output was received.',
      ].join('\n'),
      { details: { machine: this.machine, awaited, how: this.how, exitCode: this.exit?.exitCode, signal: this.exit?.signal, stderr: stderr.join('\n'), lastLines: lines } },
    );
  }
}

/** fleetlab itself stopped the machine (crash(), shutdown(), the end of a case) while something still waited on it. */
export class MachineStopped implements LifeEnd {
  readonly machine: string;
  readonly by: string;

  constructor(machine: string, by: string) {
    this.machine = machine;
    this.by = by;
  }

  during(awaited: string): FleetlabError {
    return new FleetlabError('infrastructure', `Machine ${this.machine} is not running (stopped by ${this.by}) while fleetlab waited for ${awaited}.`, {
      details: { machine: this.machine, awaited, stoppedBy: this.by },
    });
  }
}
