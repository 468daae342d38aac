// Console reporter. On a terminal: finished cases and steps scroll above a live block that is redrawn in place, one
// line per running case (its elapsed time, current step and machines' states) and a progress line (done/total,
// failures so far, an ETA from the durations of finished cases). Not a TTY, or CI set: plain lines only, each step as
// it ends. Honours NO_COLOR.
import { passRates, type CaseResult, type MachineResult, type StepResult } from '../runner/results.ts';
import type { Reporter, RunInfo, RunSummary } from './reporter.ts';
import { terminalHeld, whenTerminalHeld } from '../debug/terminal.ts';
import { failureText } from './failure-text.ts';

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
  /** Each case's fleets (role: machine names), from the run's plan. */
  private readonly fleets = new Map<string, Record<string, string[]>>();
  private timer: NodeJS.Timeout | undefined;
  /** Lines of the live block on screen now (erased before anything else is printed). */
  private statusLines = 0;
  private total = 0;
  private workers = 1;
  private done = 0;
  private failures = 0;
  private readonly finishedMs: number[] = [];

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.out = out;
    this.live = !!out.isTTY && !process.env.CI;
    this.color = !!out.isTTY && !process.env.NO_COLOR;
    if (this.live) whenTerminalHeld(() => this.clearStatus());
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
    this.total = run.cases.length;
    for (const c of run.cases) if (c.fleets) this.fleets.set(c.id, c.fleets);
    this.workers = Math.max(1, run.workers);
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
    this.done++;
    if (r.status === 'failed' || r.status === 'error' || r.status === 'interrupted') this.failures++;
    if (r.status !== 'skipped') this.finishedMs.push(r.durationMs);
    const last = r.attempts[r.attempts.length - 1]!;
    const secs = `${(r.durationMs / 1000).toFixed(1)} s`;
    const marks: Record<string, string> = { passed: this.paint('32', '✓ passed'), flaky: this.paint('33', '✓ passed on retry (flaky)'), failed: this.paint('31', '✗ failed'), error: this.paint('31', '✗ error'), skipped: this.paint('2', '- skipped'), interrupted: this.paint('31', '✗ interrupted') };
    // Which accelerator each VM actually got ("auto" may have fallen back to TCG), and which board each board role.
    const fleets = new Map<string, MachineResult[]>();
    for (const m of last.machines) if (m.fleet) fleets.set(m.fleet, [...(fleets.get(m.fleet) ?? []), m]);
    const machines = last.machines
      .filter((m) => !m.fleet)
      .map((m) => {
        const f = m.facts;
        if (f?.kind === 'board') return `${m.name}: board ${f.board}`;
        const cp = f?.kind === 'vm' ? f.checkpoint : undefined;
        return f ? `${m.name}: ${f.accel}${f.accelFallback ? ' after a KVM fallback' : ''}${f.start ? `, ${f.start.mode} ${(f.start.ms / 1000).toFixed(1)} s` : ''}${cp ? `, checkpoint "${cp.name}" ${cp.mode} ${(cp.ms / 1000).toFixed(1)} s` : ''}` : undefined;
      })
      .concat([...fleets].map(([role, ms]) => fleetSummary(role, ms)))
      .filter(Boolean)
      .join(', ');
    this.print(`${marks[r.status] ?? r.status} ${r.id} (${secs}${machines ? `; ${machines}` : ''})`);
    for (const m of last.machines) if (m.facts?.kind === 'vm' && m.facts.accelFallback) this.print(`    ${m.name}: ${m.facts.accelFallback}`);
    for (const m of last.machines) if (m.facts?.kind === 'vm' && m.facts.checkpoint?.restoreFailed) this.print(`    ${m.name}: restoring checkpoint "${m.facts.checkpoint.name}" failed, its steps replayed: ${m.facts.checkpoint.restoreFailed}`);
    for (const m of last.machines) if (m.facts?.kind === 'vm' && m.facts.start?.restoreFailed) this.print(`    ${m.name}: restoring its snapshot failed, booted cold instead: ${m.facts.start.restoreFailed}`);
    if (r.history) this.print(`    history: ${r.history.class}${r.history.bug ? ` (${r.history.bug})` : ''}: ${r.history.why}`);
    if (last.error) this.print(failureText(last, { paint: (c, t) => this.paint(c, t) }).map((l) => (l ? `    ${l}` : '')).join('\n'));
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
    const rates = passRates(s.results);
    if (rates.length) {
      this.out.write('pass rates (--repeat-each):\n');
      for (const r of rates) this.out.write(`  ${r.passed}/${r.runs} passed (${Math.round((100 * r.passed) / r.runs)} %)  ${r.caseId}\n`);
    }
  }

  private drawStatus(): void {
    // A REPL on the terminal (a pause): no live block under its prompt.
    if (!this.live || terminalHeld()) return;
    const width = Math.max(20, (this.out.columns || 120) - 1);
    const fit = (line: string) => (line.length > width ? `${line.slice(0, width - 1)}…` : line);
    const lines = [...this.running].flatMap(([id, r]) => {
      // A fleet's machines are a line of their own under the case's: a cell per machine.
      const fleets = Object.entries(this.fleets.get(id) ?? {});
      const inFleet = new Set(fleets.flatMap(([, names]) => names));
      const machines = [...r.machines].filter(([n]) => !inFleet.has(n)).map(([n, st]) => `${n}:${st}`).join(' ');
      return [
        fit(`  ${id}${r.attempt > 1 ? ` (try ${r.attempt})` : ''} ${formatSecs(Date.now() - r.started)}${r.step ? ` › ${r.step}` : ''}${machines ? ` [${machines}]` : ''}`),
        ...fleets.map(([role, names]) => fit(`    ${fleetStates(role, names, r.machines)}`)),
      ];
    });
    lines.push(fit(this.progressLine()));
    this.clearStatus();
    this.out.write(lines.map((l, i) => this.paint(i === lines.length - 1 ? '1' : '2', l)).join('\n'));
    this.statusLines = lines.length;
  }

  /** "3/12 done · 1 failed · 2 running · ETA 1m20s": the ETA once a case has finished. */
  progressLine(): string {
    const parts = [`${this.done}/${this.total} done`];
    if (this.failures) parts.push(`${this.failures} failed`);
    if (this.running.size) parts.push(`${this.running.size} running`);
    const eta = this.etaMs();
    if (eta !== undefined) parts.push(`ETA ${formatSecs(eta)}`);
    return parts.join(' · ');
  }

  /** What is left, at the mean duration of finished cases, spread over the workers; running cases count what they have left. */
  private etaMs(): number | undefined {
    if (!this.finishedMs.length) return undefined;
    const mean = this.finishedMs.reduce((a, b) => a + b, 0) / this.finishedMs.length;
    const waiting = Math.max(0, this.total - this.done - this.running.size);
    const runningLeft = [...this.running.values()].reduce((sum, r) => sum + Math.max(0, mean - (Date.now() - r.started)), 0);
    return (waiting * mean + runningLeft) / Math.min(this.workers, Math.max(1, waiting + this.running.size));
  }

  private clearStatus(): void {
    if (!this.statusLines) return;
    // To the start of the block's first line, then erase to the end of the screen.
    this.out.write(`\r${this.statusLines > 1 ? `\x1b[${this.statusLines - 1}A` : ''}\x1b[J`);
    this.statusLines = 0;
  }
}

/** 42s, 3m05s, 1h02m. */
function formatSecs(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const CELL: Record<string, string> = { running: '█', starting: '▒', stopping: '▬', stopped: '░' };

/**
 * A fleet's machines live, a cell each in order (█ running, ▒ starting, ▬ stopping, ░ stopped or not yet started),
 * then the counts: "node ██▒░ 2 running · 1 starting · 1 stopped".
 */
export function fleetStates(role: string, names: string[], states: Map<string, string>): string {
  const st = names.map((n) => states.get(n) ?? 'stopped');
  const counts = ['running', 'starting', 'stopping', 'stopped'].map((s) => [s, st.filter((x) => x === s).length] as const).filter(([, k]) => k);
  return `${role} ${st.map((s) => CELL[s] ?? '?').join('')} ${counts.map(([s, k]) => `${k} ${s}`).join(' · ')}`;
}

/** A fleet's machines in one line: "node (16): tcg, 1 cold 5.2 s, 15 warm 18.7–30.5 s". */
export function fleetSummary(role: string, ms: MachineResult[]): string {
  const accels = [...new Set(ms.map((m) => (m.facts?.kind === 'vm' ? m.facts.accel : undefined)).filter(Boolean))];
  const s = (x: number) => `${(x / 1000).toFixed(1)} s`;
  const modes = (['cold', 'warm'] as const).map((mode) => {
    const t = ms.flatMap((m) => (m.facts?.kind === 'vm' && m.facts.start?.mode === mode ? [m.facts.start.ms] : []));
    if (!t.length) return undefined;
    const [lo, hi] = [Math.min(...t), Math.max(...t)];
    return `${t.length} ${mode} ${lo === hi ? s(lo) : `${s(lo).slice(0, -2)}–${s(hi)}`}`;
  });
  return [`${role} (${ms.length})${accels.length ? `: ${accels.join('/')}` : ''}`, ...modes.filter(Boolean)].join(', ');
}
