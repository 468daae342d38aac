// Console checks: lines that mean a machine is broken whatever the scenario does (a kernel panic, an oops, an
// emergency shell, an OOM kill, an initramfs that did not unpack, a systemd ordering cycle). A match ends the
// machine's life, so every wait on it fails at once with the matching lines, the way CoreOS's kola fails a test on its
// serial log.

import { FleetlabError, TestFailure, type ErrorKind } from '../errors/fleetlab-error.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom, raceDeadline } from '../time/deadline.ts';
import { withLife, type LifeEnd, type Lifeline } from '../time/lifeline.ts';

/** A named pattern watched on every console line. */
export interface ConsoleCheck {
  name: string;
  /** What a match means, for messages: "a kernel panic". */
  what: string;
  pattern: RegExp;
}

/** The checks every machine gets unless its profile or scenario ignores them by name. */
export const BUILTIN_CONSOLE_CHECKS: readonly ConsoleCheck[] = [
  { name: 'kernel-panic', what: 'a kernel panic', pattern: /Kernel panic - not syncing/ },
  { name: 'oops', what: 'a kernel oops', pattern: /\bOops(?:: [0-9a-f]{4} \[#\d+\]|: general protection fault|\[#\d+\])/ },
  {
    name: 'kernel-bug',
    what: 'a kernel BUG',
    pattern: /\bBUG: (?:unable to handle|kernel NULL pointer dereference|soft lockup|scheduling while atomic|sleeping function called|Bad page|KASAN|workqueue lockup)/,
  },
  {
    name: 'emergency-shell',
    what: 'an emergency or rescue shell',
    pattern: /You are in emergency mode|Entering emergency mode|You are in rescue mode|Give root password for maintenance|An error occurred in stage 1 of the boot process|Dropping to a shell!/,
  },
  { name: 'oom-kill', what: 'the OOM killer', pattern: /Out of memory: Killed process|invoked oom-killer/ },
  // The kernel goes on with what it unpacked: commands then fail as "not found" far from the cause (measured: the
  // testbed in 128 MiB lost batctl and waited for routes until its deadline). Give the machine more memory.
  { name: 'initramfs-unpack', what: 'an initramfs that did not unpack (too little memory for it?)', pattern: /Initramfs unpacking failed/ },
  { name: 'systemd-ordering-cycle', what: 'a systemd ordering cycle', pattern: /Found ordering cycle on / },
];

/** Extra checks and checks to ignore, as a profile or a scenario declares them. */
export interface ConsoleCheckSettings {
  add?: Array<{ name: string; pattern: RegExp | string; what?: string }>;
  ignore?: string[];
}

/** The checks in force: the built-in ones, less what any settings ignore, plus what they add. */
export function consoleChecks(...settings: Array<ConsoleCheckSettings | undefined>): ConsoleCheck[] {
  const ignore = new Set(settings.flatMap((s) => s?.ignore ?? []));
  const added = settings.flatMap((s) => s?.add ?? []).map((a) => ({ name: a.name, what: a.what ?? `"${a.name}"`, pattern: typeof a.pattern === 'string' ? new RegExp(a.pattern) : a.pattern }));
  return [...BUILTIN_CONSOLE_CHECKS, ...added].filter((c) => !ignore.has(c.name));
}

/** What a check saw: the console, the matching line and the lines around it. */
export interface ConsoleCheckHit {
  check: ConsoleCheck;
  console: string;
  line: string;
  context: string[];
}

const CONTEXT_BEFORE = 8;
const CONTEXT_AFTER = 20;
/** After a match, lines are gathered this long (a panic's trace follows its first line) before the check fires. */
const CONTEXT_MS = 400;

/** Watches console lines; fires once per machine life (a suppressed check is announced to its expecter instead). */
export class ConsoleWatcher {
  private checks: ConsoleCheck[];
  private readonly onFire: (hit: ConsoleCheckHit) => void;
  private readonly recent = new Map<string, string[]>();
  private collecting: { hit: ConsoleCheckHit; suppressed: boolean } | undefined;
  private readonly suppressed = new Map<string, number>();
  private readonly hitListeners = new Set<(hit: ConsoleCheckHit) => void>();
  private fired = false;

  constructor(checks: ConsoleCheck[], onFire: (hit: ConsoleCheckHit) => void) {
    this.checks = checks;
    this.onFire = onFire;
  }

  /** A new life (the machine started again): checks may fire again. */
  reset(): void {
    this.fired = false;
    this.collecting = undefined;
    this.recent.clear();
  }

  /** One line of console `console`. */
  line(console: string, line: string): void {
    const recent = this.recent.get(console) ?? [];
    recent.push(line);
    if (recent.length > CONTEXT_BEFORE + 1) recent.shift();
    this.recent.set(console, recent);
    if (this.collecting) {
      if (this.collecting.hit.console === console && this.collecting.hit.context.length < CONTEXT_BEFORE + 1 + CONTEXT_AFTER) this.collecting.hit.context.push(line);
      return;
    }
    if (this.fired) return;
    const check = this.checks.find((c) => c.pattern.test(line));
    if (!check) return;
    const hit: ConsoleCheckHit = { check, console, line, context: [...recent] };
    const suppressed = (this.suppressed.get(check.name) ?? 0) > 0;
    this.collecting = { hit, suppressed };
    setTimeout(() => {
      this.collecting = undefined;
      if (suppressed) {
        for (const fn of this.hitListeners) fn(hit);
      } else {
        this.fired = true;
        this.onFire(hit);
      }
    }, CONTEXT_MS).unref();
  }

  /** Silences check `name` until the returned function is called; matches meanwhile are recorded and announced. */
  suppress(name: string, onHit: (hit: ConsoleCheckHit) => void): () => void {
    if (!this.checks.some((c) => c.name === name)) this.checks = [...this.checks, ...BUILTIN_CONSOLE_CHECKS.filter((c) => c.name === name)];
    this.suppressed.set(name, (this.suppressed.get(name) ?? 0) + 1);
    const listener = (hit: ConsoleCheckHit) => hit.check.name === name && onHit(hit);
    this.hitListeners.add(listener);
    return () => {
      this.hitListeners.delete(listener);
      this.suppressed.set(name, (this.suppressed.get(name) ?? 1) - 1);
    };
  }

  /**
   * Runs `fn` with check `name` silenced, for a step that provokes it on purpose (a panic test); resolves with the
   * matching lines once the check matched (fn's own outcome is then not awaited: the machine may never answer it).
   * Fails if the check did not match by the time fn has ended, or within the timeout; ends with `life`.
   */
  async expect(name: string, fn: () => Promise<unknown>, opts: WaitOptions | undefined, on: { machine: string; life: Lifeline; lastLines: () => string[] }): Promise<ConsoleCheckHit> {
    const deadline = deadlineFrom(opts, 120_000, `console check "${name}" on ${on.machine}`, 'pass { timeout } to expectConsoleCheck()');
    let onHit!: (hit: ConsoleCheckHit) => void;
    const hit = new Promise<ConsoleCheckHit>((r) => (onHit = r));
    const release = this.suppress(name, onHit);
    try {
      const work = Promise.resolve()
        .then(fn)
        .then(
          () => 'ended' as const,
          () => 'ended' as const,
        );
      const first = await raceDeadline(Promise.race([hit, work]), deadline, withLife(opts?.signal, on.life), `console check "${name}" to match`);
      const value = first.timedOut ? undefined : first.value;
      if (value && value !== 'ended') return value;
      // fn ended first: the lines may still be on their way.
      const late = await raceDeadline(hit, Math.min(2000, deadline.remaining()));
      if (!late.timedOut) return late.value;
      throw new TestFailure(`Expected console check "${name}" to match on ${on.machine}${value === 'ended' ? ' while the step ran' : ` within ${deadline.describe()}`}, but no console line did.`, {
        details: { machine: on.machine, check: name, lastLines: on.lastLines() },
      });
    } finally {
      // Lines of the same event keep coming for a moment (a panic's trace); keep them silenced a little longer.
      setTimeout(release, 1000).unref();
    }
  }
}

/** A console check matched: the machine is broken, whatever the scenario was waiting for. */
export class ConsoleCheckFired implements LifeEnd {
  readonly machine: string;
  readonly hit: ConsoleCheckHit;
  /** infrastructure while fleetlab boots the machine, test-failure inside the scenario body. */
  readonly kind: ErrorKind;

  constructor(machine: string, hit: ConsoleCheckHit, kind: ErrorKind) {
    this.machine = machine;
    this.hit = hit;
    this.kind = kind;
  }

  during(awaited: string): FleetlabError {
    const { check, console, context } = this.hit;
    return new FleetlabError(
      this.kind,
      [
        `Console check "${check.name}" fired on ${this.machine}: console ${console} shows ${check.what}${this.kind === 'infrastructure' ? ' while the machine booted' : ''} (fleetlab was waiting for ${awaited}).`,
        `Matching line and its context:\n${context.map((l) => `  | ${l}`).join('\n')}`,
        `If the scenario provokes this on purpose, wrap it in machine.expectConsoleCheck("${check.name}", …)${check.name === 'kernel-panic' ? ' or machine.expectPanic(…)' : ''}, or ignore the check in the profile or scenario (consoleChecks: { ignore: ["${check.name}"] }).`,
      ].join('\n'),
      { details: { machine: this.machine, awaited, check: check.name, console, line: this.hit.line, context } },
    );
  }
}
