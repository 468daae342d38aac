// Results of a run, separate from the tasks that produced them, with stable ids.
import type { MachineFacts } from '../protocols/machine.ts';
import type { NetworkPicture } from '../net/network-picture.ts';
import type { ErrorKind } from '../errors/fleetlab-error.ts';
import type { SystemIdentity } from './system-identity.ts';

/** An error as reports need it. */
export interface ErrorInfo {
  kind: ErrorKind | 'interrupted';
  type: string;
  message: string;
  stack?: string;
  /** file:line:column in the scenario file, where known. */
  location?: string;
  expected?: unknown;
  actual?: unknown;
}

/** One step of a scenario, with its children. */
export interface StepResult {
  name: string;
  startedAt: number;
  durationMs: number;
  status: 'passed' | 'failed' | 'running';
  error?: ErrorInfo;
  steps: StepResult[];
}

/** One machine of a case. */
export interface MachineResult {
  role: string;
  name: string;
  profile: string;
  logPath: string;
  /** Epoch ms the console log's line stamps count from (to line it up with steps). */
  logStartedAt?: number;
  facts?: MachineFacts;
  /** The lab board it ran on, for a board. */
  board?: { board: string; lab: string; serial: string; power: string; host?: string };
  /** The counted role (machines: { node: { count } }) it is one of: reporters show a fleet as one. */
  fleet?: string;
  /** What happened to it, in order (report.html's timeline): state changes, resets, console checks; t in epoch ms. */
  events?: MachineEvent[];
  /** The system it ran at the case's end, when a history records the run (system-identity.ts). */
  system?: SystemIdentity;
}

/** One thing that happened to a machine during a case. */
export interface MachineEvent {
  t: number;
  kind: 'state' | 'reset' | 'console-check';
  /** The new state, "boot N", or the check's name. */
  detail: string;
}

/** Outcome of one try. */
export type AttemptStatus = 'passed' | 'failed' | 'error' | 'skipped' | 'interrupted';

/** One try of a case. */
export interface AttemptResult {
  attempt: number;
  status: AttemptStatus;
  startedAt: string;
  durationMs: number;
  error?: ErrorInfo;
  skipReason?: string;
  steps: StepResult[];
  machines: MachineResult[];
  artifacts: { name: string; path: string }[];
  output: string[];
  /** Properties the scenario set (ctx.property), for JUnit. */
  properties?: Record<string, string>;
  /** What changed on the scenario's networks (partitions, heals, link faults), in order; t in epoch ms. */
  network?: Array<{ t: number; event: string }>;
  /**
   * The host's memory in use (MemTotal - MemAvailable, MiB) when the case's machines were acquired and at its peak
   * until the body ended (sampled each second): the whole host's, so cases on other workers count too.
   */
  host?: { startMiB: number; peakMiB: number; totalMiB: number };
  /** Its mesh networks as report.html draws them: links, partitions, the routes batman-adv used at the end. */
  topology?: NetworkPicture[];
}

/** What a failure is against the run history (harness/history): see docs/gating.md. */
export const FAILURE_CLASSES = ['new', 'still-failing', 'flaky', 'known', 'known-expired'] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/** A case's failure classified against the run history when it ended. */
export interface CaseHistory {
  class: FailureClass;
  /** Why, in a few words ("passed in run X (abc1234)"). */
  why: string;
  /** The known-failures entry's bug, for a known failure. */
  bug?: string;
}

/** Final outcome of a case: its last try's, with 'flaky' for a pass after failed tries. */
export type CaseStatus = AttemptStatus | 'flaky';

/** One scenario × machine variant. */
export interface CaseResult {
  /** Stable id: "scenarios/smoke.ts::smoke[x86_64-direct]". */
  id: string;
  file: string;
  scenario: string;
  variant: string;
  tags: string[];
  status: CaseStatus;
  durationMs: number;
  attempts: AttemptResult[];
  /** Which run of the case this is, when the run repeats each case (--repeat-each). */
  repeat?: CaseRepeat;
  /** Its failure classified against the run history, when it did not simply pass and a history was at hand. */
  history?: CaseHistory;
  /** The case in the runs before this one (oldest first, up to 10), from the run history: report.html's sparkline. */
  trend?: TrendPoint[];
}

/** One earlier run of a case, as the history has it. */
export interface TrendPoint {
  runId: string;
  status: CaseStatus;
  durationMs: number;
  /** The properties the case set in that run (ctx.property): report.html plots the numeric ones. */
  properties: Record<string, string>;
}

/** One of the N runs of a case that --repeat-each N makes: its id ends in "#index". */
export interface CaseRepeat {
  index: number;
  of: number;
  /** The case's id without the repeat. */
  caseId: string;
}

/** How a case is named in reports: "smoke [x86_64-direct]", with "(repeat 2/3)" when repeated. */
export function caseTitle(c: { scenario: string; variant: string; repeat?: CaseRepeat }): string {
  return `${c.scenario} [${c.variant}]${c.repeat ? ` (repeat ${c.repeat.index}/${c.repeat.of})` : ''}`;
}

/** A repeated case's pass rate: its runs that passed (a pass after a retry counts) out of all. */
export interface PassRate {
  caseId: string;
  scenario: string;
  variant: string;
  passed: number;
  runs: number;
}

/** The pass rate of every case the run repeated, in the order of the results. */
export function passRates(results: CaseResult[]): PassRate[] {
  const rates = new Map<string, PassRate>();
  for (const r of results) {
    if (!r.repeat) continue;
    const rate = rates.get(r.repeat.caseId) ?? { caseId: r.repeat.caseId, scenario: r.scenario, variant: r.variant, passed: 0, runs: 0 };
    rate.runs++;
    if (r.status === 'passed' || r.status === 'flaky') rate.passed++;
    rates.set(r.repeat.caseId, rate);
  }
  return [...rates.values()];
}
