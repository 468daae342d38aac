// Console reporter: live progress on a terminal; plain lines when not a TTY or CI is set; honours NO_COLOR.
import type { CaseResult, StepResult } from '../runner/results.ts';
import type { Reporter, RunInfo, RunSummary } from './reporter.ts';

interface Live {
  started: number;
  step: string;
  machines: Map<string, string>;
  attempt: number;
}

/** Prints progress and a summary to a stream (stdout by default). */
export class ConsoleReporter implements Reporter {
  private readonly out: NodeJS.WriteStream;
  private readonly live: boolean;
  private readonly color: boolean;
  private readonly running = new Map<string, Live>();
  private timer: NodeJS.Timeout | undefined;
  private statusShown = false;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.out = out;
    this.live = !!out.isTTY && !process.env.CI;
    this.color = !!out.isTTY && !process.env.NO_COLOR;
  }

  private paint(code: string, s: string): string {
    return this.color ? `\x1b[${code}m${s}\x1b[0m` : s;
  }

  private print(line: string): void {
    this.clearStatus();
    this.out.write(`${line}\n`);
    this.drawStatus();
  }

  onRunBegin(run: RunInfo): void {
    this.print(`fleetlab run ${run.runId}: ${run.cases.length} case${run.cases.length === 1 ? '' : 's'} on ${run.workers} worker${run.workers === 1 ? '' : 's'}, output ${run.outputDir}`);
    if (this.live) this.timer = setInterval(() => this.drawStatus(), 500).unref();
  }

  onCaseBegin(c: { id: string; attempt: number }): void {
    this.running.set(c.id, { started: Date.now(), step: '', machines: new Map(), attempt: c.attempt });
    this.print(`${this.paint('36', '▶')} ${c.id}${c.attempt > 1 ? ` (try ${c.attempt})` : ''}`);
  }

  onMachineState(c: { id: string; machine: string; state: string }): void {
    this.running.get(c.id)?.machines.set(c.machine, c.state);
  }

  onStepBegin(c: { id: string; path: string[] }): void {
    const r = this.running.get(c.id);
    if (r) r.step = c.path.join(' › ');
  }

  onStepEnd(c: { id: string; path: string[]; step: StepResult }): void {
    if (this.live || c.path.length > 1) return;
    const mark = c.step.status === 'passed' ? this.paint('32', '✓') : this.paint('31', '✗');
    this.print(`  ${mark} ${c.path.join(' › ')} (${(c.step.durationMs / 1000).toFixed(1)} s)`);
  }

  onAttemptEnd(c: { id: string; attempt: { status: string; error?: { message: string } }; willRetry: boolean }): void {
    if (c.willRetry) this.print(`  ${this.paint('33', '↻')} ${c.id}: infrastructure error, retrying: ${c.attempt.error?.message.split('\n')[0] ?? ''}`);
  }

  onCaseEnd(r: CaseResult): void {
    this.running.delete(r.id);
    const last = r.attempts[r.attempts.length - 1]!;
    const secs = `${(r.durationMs / 1000).toFixed(1)} s`;
    const marks: Record<string, string> = { passed: this.paint('32', '✓ passed'), flaky: this.paint('33', '✓ passed on retry (flaky)'), failed: this.paint('31', '✗ failed'), error: this.paint('31', '✗ error'), skipped: this.paint('2', '- skipped'), interrupted: this.paint('31', '✗ interrupted') };
    // Which accelerator each machine actually got: "auto" may have fallen back to TCG.
    const machines = last.machines.filter((m) => m.facts).map((m) => `${m.name}: ${m.facts!.accel}${m.facts!.accelFallback ? ' after a KVM fallback' : ''}${m.facts!.start ? `, ${m.facts!.start.mode} ${(m.facts!.start.ms / 1000).toFixed(1)} s` : ''}`).join(', ');
    this.print(`${marks[r.status] ?? r.status} ${r.id} (${secs}${machines ? `; ${machines}` : ''})`);
    for (const m of last.machines) if (m.facts?.accelFallback) this.print(`    ${m.name}: ${m.facts.accelFallback}`);
    for (const m of last.machines) if (m.facts?.start?.restoreFailed) this.print(`    ${m.name}: restoring its snapshot failed, booted cold instead: ${m.facts.start.restoreFailed}`);
    if (last.error) this.print(last.error.message.split('\n').map((l) => `    ${l}`).join('\n'));
    if (last.skipReason) this.print(`    ${last.skipReason}`);
  }

  onRunEnd(s: RunSummary): void {
    clearInterval(this.timer);
    this.clearStatus();
    const count = (st: string) => s.results.filter((r) => r.status === st).length;
    const passed = count('passed') + count('flaky');
    this.out.write(
      `\n${passed} passed, ${count('failed')} failed, ${count('error') + count('interrupted')} errors, ${count('skipped')} skipped` +
        `${count('flaky') ? ` (${count('flaky')} flaky)` : ''} in ${(s.durationMs / 1000).toFixed(1)} s${s.interrupted ? ' — interrupted' : ''}\n`,
    );
  }

  private drawStatus(): void {
    if (!this.live || !this.running.size) return;
    const parts = [...this.running].map(([id, r]) => {
      const machines = [...r.machines].map(([n, st]) => `${n}:${st}`).join(' ');
      return `${id} ${((Date.now() - r.started) / 1000).toFixed(0)}s${r.step ? ` › ${r.step}` : ''}${machines ? ` [${machines}]` : ''}`;
    });
    const width = this.out.columns || 120;
    this.out.write(`\r\x1b[K${this.paint('2', parts.join(' | ').slice(0, width - 1))}`);
    this.statusShown = true;
  }

  private clearStatus(): void {
    if (this.statusShown) this.out.write('\r\x1b[K');
    this.statusShown = false;
  }
}
