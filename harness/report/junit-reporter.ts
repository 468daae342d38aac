// JUnit XML for CI (Jenkins, GitLab, GitHub): valid on disk after every case, right even when the run is interrupted.
import junitModule from 'junit-report-builder';
import type { Builder, TestCase } from 'junit-report-builder';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { caseTitle, type AttemptResult, type CaseResult, type ErrorInfo, type StepResult } from '../runner/results.ts';
import { AtomicFile } from './atomic-file.ts';
import { gitCommit } from './git-commit.ts';
import type { Reporter, RunInfo, RunSummary } from './reporter.ts';

const LOG_SLICE_BYTES = 64 * 1024;
// The package is CommonJS whose module.exports is the builder; its types describe an ES default export.
const junit = junitModule as unknown as Builder;

/** Characters XML 1.0 forbids anywhere, even in CDATA. */
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g;

/** Text made safe for XML: the control characters it forbids removed (xmlbuilder itself splits "]]>" in CDATA). */
export function xmlSafe(s: string): string {
  return s.replace(FORBIDDEN, '');
}

/** Writes junit.xml: one testsuite per scenario file, one testcase per scenario × machine variant. */
export class JunitReporter implements Reporter {
  private readonly file: AtomicFile;
  private run: RunInfo | undefined;
  private readonly done = new Map<string, CaseResult>();
  private readonly running = new Map<string, { attempts: AttemptResult[]; startedAt: number }>();

  constructor(path: string) {
    this.file = new AtomicFile(path);
  }

  onRunBegin(run: RunInfo): void {
    this.run = run;
  }

  onCaseBegin(c: { id: string; attempt: number }): void {
    if (!this.running.has(c.id)) this.running.set(c.id, { attempts: [], startedAt: Date.now() });
  }

  onAttemptEnd(c: { id: string; attempt: AttemptResult }): void {
    this.running.get(c.id)?.attempts.push(c.attempt);
  }

  async onCaseEnd(result: CaseResult): Promise<void> {
    this.running.delete(result.id);
    this.done.set(result.id, result);
    await this.write();
  }

  /** On interruption the cases still running become errors "interrupted" before the final write. */
  async onRunEnd(summary: RunSummary): Promise<void> {
    for (const r of summary.results) this.done.set(r.id, r);
    await this.write();
  }

  /** Records the running cases as interrupted and writes the file now (signal handlers call this). */
  async writeInterrupted(reason: string): Promise<void> {
    for (const [id, r] of this.running) {
      const info = this.run?.cases.find((c) => c.id === id);
      if (!info || this.done.has(id)) continue;
      const attempt: AttemptResult = {
        attempt: r.attempts.length + 1,
        status: 'interrupted',
        startedAt: new Date(r.startedAt).toISOString(),
        durationMs: Date.now() - r.startedAt,
        error: { kind: 'interrupted', type: 'Interrupted', message: `interrupted: ${reason}` },
        steps: [],
        machines: [],
        artifacts: [],
        output: [],
      };
      this.done.set(id, { id, file: info.file, scenario: info.scenario, variant: info.variant, tags: [], status: 'interrupted', durationMs: attempt.durationMs, attempts: [...r.attempts, attempt], ...(info.repeat ? { repeat: info.repeat } : {}) });
    }
    await this.write();
  }

  private write(): Promise<void> {
    return this.file.write(() => this.build());
  }

  /** The XML of every case finished so far, in plan order. */
  async build(): Promise<string> {
    const builder = junit.newBuilder();
    const order = this.run?.cases.map((c) => c.id) ?? [...this.done.keys()];
    const byFile = new Map<string, CaseResult[]>();
    for (const id of order) {
      const r = this.done.get(id);
      if (!r) continue;
      if (!byFile.has(r.file)) byFile.set(r.file, []);
      byFile.get(r.file)!.push(r);
    }
    for (const [file, results] of byFile) {
      const suite = builder.testSuite().name(file).timestamp(new Date(results[0]!.attempts[0]?.startedAt ?? Date.now()));
      suite.time(results.reduce((s, r) => s + r.durationMs, 0) / 1000);
      const machines = results.flatMap((r) => r.attempts.flatMap((a) => a.machines));
      const distinct = (f: (m: (typeof machines)[number]) => string | undefined) => [...new Set(machines.map(f).filter(Boolean))].join(', ') || 'n/a';
      suite.property('machine.profile', distinct((m) => m.profile));
      suite.property('machine.arch', distinct((m) => m.facts?.arch));
      suite.property('machine.firmware', distinct((m) => m.facts?.firmware));
      suite.property('machine.accel', distinct((m) => (m.facts?.kind === 'vm' ? m.facts.accel : m.facts?.kind)));
      suite.property('qemu.version', distinct((m) => (m.facts?.kind === 'vm' ? m.facts.qemuVersion : undefined)));
      suite.property('host', hostname());
      suite.property('git.commit', gitCommit());
      for (const [k, v] of Object.entries(this.run?.inputs ?? {})) suite.property(`input.${k}`, v);
      for (const r of results) await this.addCase(suite.testCase(), r);
    }
    return builder.build();
  }

  private async addCase(tc: TestCase, r: CaseResult): Promise<void> {
    const last = r.attempts[r.attempts.length - 1]!;
    const earlier = r.attempts.slice(0, -1);
    tc.className(r.file.replace(/\.[cm]?[jt]s$/, '')).name(caseTitle(r)).time(r.durationMs / 1000);
    if (last.status === 'failed') tc.failure(xmlSafe(failureMessage(last.error)), last.error?.type ?? 'TestFailure').stacktrace(xmlSafe(last.error?.stack ?? ''));
    else if (last.status === 'error' || last.status === 'interrupted') tc.error(xmlSafe(failureMessage(last.error)), last.error?.type ?? 'Error', xmlSafe(last.error?.stack ?? ''));
    else if (last.status === 'skipped') tc.skipped();
    // Its failure against the run history (docs/gating.md).
    if (r.history) {
      tc.property('history.class', r.history.class);
      tc.property('history.why', xmlSafe(r.history.why));
      if (r.history.bug) tc.property('history.bug', xmlSafe(r.history.bug));
    }
    // Per case too: a matrix run puts cases of different profiles (and accelerators) in one suite.
    for (const m of last.machines) {
      const prefix = last.machines.length > 1 ? `machine.${m.role}.` : 'machine.';
      tc.property(`${prefix}profile`, m.profile);
      if (m.board) {
        tc.property(`${prefix}board`, m.board.board);
        tc.property(`${prefix}board.lab`, m.board.lab);
        tc.property(`${prefix}board.serial`, m.board.serial);
        tc.property(`${prefix}board.power`, m.board.power);
        if (m.board.host) tc.property(`${prefix}board.host`, m.board.host);
      }
      if (m.facts) {
        tc.property(`${prefix}arch`, m.facts.arch);
        tc.property(`${prefix}firmware`, m.facts.firmware);
      }
      if (m.facts?.kind === 'vm') {
        tc.property(`${prefix}accel`, m.facts.accel);
        tc.property(`${prefix}accel.reason`, m.facts.accelReason);
        const st = m.facts.start;
        if (st) {
          // Warm starts: restored from a snapshot or booted, how long it took, and why a boot.
          tc.property(`${prefix}start`, st.mode);
          tc.property(`${prefix}start.ms`, String(st.ms));
          if (st.waitedMs !== undefined) tc.property(`${prefix}start.waited.ms`, String(st.waitedMs));
          if (st.reason) tc.property(`${prefix}start.reason`, xmlSafe(st.reason));
          if (st.restoreFailed) tc.property(`${prefix}start.restore-failed`, xmlSafe(st.restoreFailed));
        }
        const cp = m.facts.checkpoint;
        if (cp) {
          // A setup checkpoint: restored (from which case), or its steps run and saved (or why not).
          tc.property(`${prefix}checkpoint`, xmlSafe(cp.name));
          tc.property(`${prefix}checkpoint.mode`, cp.mode);
          tc.property(`${prefix}checkpoint.ms`, String(cp.ms));
          if (cp.madeBy) tc.property(`${prefix}checkpoint.made-by`, xmlSafe(cp.madeBy));
          if (cp.reason) tc.property(`${prefix}checkpoint.reason`, xmlSafe(cp.reason));
          if (cp.restoreFailed) tc.property(`${prefix}checkpoint.restore-failed`, xmlSafe(cp.restoreFailed));
        }
      }
    }
    if (last.host) {
      // The host's memory in use (all of it, other workers' cases too) as the case began and at its peak.
      tc.property('host.memory.start.mib', String(last.host.startMiB));
      tc.property('host.memory.peak.mib', String(last.host.peakMiB));
      tc.property('host.memory.total.mib', String(last.host.totalMiB));
    }
    for (const [name, value] of Object.entries(last.properties ?? {})) tc.property(name, xmlSafe(value));
    tc.standardOutput(xmlSafe(await systemOut(r)));
    const extra = earlier.filter((a) => a.error);
    const skipReason = last.skipReason;
    const build = tc.build.bind(tc);
    tc.build = (parent: Parameters<TestCase["build"]>[0]) => {
      const el = build(parent);
      if (skipReason) {
        const sk = (el as unknown as { children: { name?: string; attribute: (k: string, v: string) => void }[] }).children.find((c) => c.name === 'skipped');
        sk?.attribute('message', xmlSafe(skipReason));
      }
      for (const a of extra) {
        const passedLater = last.status === 'passed';
        const isFailure = a.status === 'failed';
        const tag = passedLater ? (isFailure ? 'flakyFailure' : 'flakyError') : isFailure ? 'rerunFailure' : 'rerunError';
        const e = el.ele(tag, { message: xmlSafe(failureMessage(a.error)), type: a.error?.type ?? 'Error' });
        if (a.error?.stack) e.ele('stackTrace').cdata(xmlSafe(a.error.stack));
        e.ele('system-out').cdata(xmlSafe(`try ${a.attempt}: ${a.status}\n${stepTree(a.steps)}`));
      }
      return el;
    };
  }
}

function failureMessage(e: ErrorInfo | undefined): string {
  if (!e) return 'failed';
  const parts = [e.message];
  if (e.expected !== undefined || e.actual !== undefined) parts.push(`expected: ${JSON.stringify(e.expected)}\nactual: ${JSON.stringify(e.actual)}`);
  if (e.location) parts.push(`at ${e.location}`);
  return parts.join('\n');
}

/** The step tree of a try, one line a step with its duration. */
export function stepTree(steps: StepResult[], depth = 0): string {
  return steps
    .map((s) => {
      const mark = s.status === 'passed' ? '✓' : s.status === 'failed' ? '✗' : '…';
      const line = `${'  '.repeat(depth)}${mark} ${s.name} (${(s.durationMs / 1000).toFixed(2)} s)${s.error ? ` — ${s.error.message.split('\n')[0]}` : ''}`;
      return [line, stepTree(s.steps, depth + 1)].filter(Boolean).join('\n');
    })
    .join('\n');
}

async function systemOut(r: CaseResult): Promise<string> {
  const last = r.attempts[r.attempts.length - 1]!;
  const out = [`${r.id}: ${r.status} after ${r.attempts.length} ${r.attempts.length === 1 ? 'try' : 'tries'}`, 'steps:', stepTree(last.steps) || '  (none)'];
  if (last.output.length) out.push('', 'log:', ...last.output);
  for (const m of last.machines) {
    out.push('', `console of ${m.name} (${m.profile}${m.facts ? `, ${m.facts.kind === 'vm' ? m.facts.accel : `board ${m.facts.board}`}` : ''}), full log: ${m.logPath}`);
    if (existsSync(m.logPath)) out.push(await consoleTail(m.logPath));
  }
  const attachments = [...r.attempts.flatMap((a) => a.machines.map((m) => m.logPath)), ...r.attempts.flatMap((a) => a.artifacts.map((x) => x.path))];
  out.push('', ...[...new Set(attachments)].map((p) => `[[ATTACHMENT|${p}]]`));
  return out.join('\n');
}

/** Longest console line shown in JUnit: one command's binary output must not fill the tail. */
const MAX_TAIL_LINE = 2000;

/** The last LOG_SLICE_BYTES of a console log, as text, each line cut to MAX_TAIL_LINE characters. */
async function consoleTail(path: string): Promise<string> {
  const bytes = await readFile(path);
  const cut = bytes.length > LOG_SLICE_BYTES ? bytes.length - LOG_SLICE_BYTES : 0;
  const lines = bytes
    .subarray(cut)
    .toString('utf8')
    .split('\n')
    .map((l) => (l.length > MAX_TAIL_LINE ? `${l.slice(0, MAX_TAIL_LINE)} [… ${l.length - MAX_TAIL_LINE} more characters in the full log]` : l));
  return `${cut ? `[... ${cut} bytes cut, see the full log ...]\n` : ''}${lines.join('\n')}`;
}

/** Path of the JUnit file in an output directory. */
export function junitPath(outputDir: string): string {
  return join(outputDir, 'junit.xml');
}
