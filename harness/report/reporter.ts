// The reporter interface: optional hooks; a multiplexer isolates each reporter's exceptions.
import type { AttemptResult, CaseRepeat, CaseResult, StepResult } from '../runner/results.ts';

/** What a reporter learns at the start of a run. */
export interface RunInfo {
  runId: string;
  outputDir: string;
  /** fleets: each counted role's machines (machines: { node: { count } }), for reporters that show a fleet as one. */
  cases: { id: string; file: string; scenario: string; variant: string; repeat?: CaseRepeat; fleets?: Record<string, string[]> }[];
  workers: number;
  startedAt: string;
  /** The run's inputs (--input NAME=VALUE). */
  inputs?: Record<string, string>;
  /** The options it runs with (command line over fleetlab.config.ts and its project). */
  options?: Record<string, unknown>;
}

/** What a reporter learns at the end. */
export interface RunSummary {
  results: CaseResult[];
  durationMs: number;
  exitCode: number;
  interrupted: boolean;
}

/** Hooks a reporter may implement; each is optional. */
export interface Reporter {
  onRunBegin?(run: RunInfo): void | Promise<void>;
  onCaseBegin?(c: { id: string; attempt: number }): void | Promise<void>;
  onMachineState?(c: { id: string; machine: string; state: string }): void;
  onStepBegin?(c: { id: string; path: string[] }): void;
  onStepEnd?(c: { id: string; path: string[]; step: StepResult }): void;
  onConsoleLine?(c: { id: string; machine: string; line: string }): void;
  onAttemptEnd?(c: { id: string; attempt: AttemptResult; willRetry: boolean }): void | Promise<void>;
  onCaseEnd?(result: CaseResult): void | Promise<void>;
  onRunEnd?(summary: RunSummary): void | Promise<void>;
}

type Hook = keyof Reporter;

/** Calls every reporter's hook; a reporter that throws is reported once on stderr and does not stop the others. */
export class ReporterMux {
  private readonly reporters: Reporter[];
  private readonly warned = new Set<string>();

  constructor(reporters: Reporter[]) {
    this.reporters = reporters;
  }

  async emit<H extends Hook>(hook: H, arg: Parameters<NonNullable<Reporter[H]>>[0]): Promise<void> {
    await Promise.all(
      this.reporters.map(async (r) => {
        const fn = r[hook] as ((a: unknown) => unknown) | undefined;
        if (!fn) return;
        try {
          await fn.call(r, arg);
        } catch (err) {
          const key = `${r.constructor.name}.${hook}`;
          if (!this.warned.has(key)) {
            this.warned.add(key);
            process.stderr.write(`fleetlab: reporter ${key} failed (ignored): ${(err as Error).stack ?? err}\n`);
          }
        }
      }),
    );
  }

  /** For hot hooks (console lines): fire and forget, still isolated. */
  emitSync<H extends Hook>(hook: H, arg: Parameters<NonNullable<Reporter[H]>>[0]): void {
    void this.emit(hook, arg);
  }
}
