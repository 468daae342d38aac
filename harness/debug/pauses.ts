// A run's pauses: ctx.pause('why'), --debug (before the first step, and on failure) and --pause-on-failure. A pause
// opens the REPL on the terminal when there is one; either way it serves the case's consoles, publishes the session
// (fleetlab console / ssh / attach) and listens on a Unix socket for `fleetlab attach`. Without a terminal it waits
// at most the pause timeout for someone to attach and answer, then the case goes on as if .continue had been typed.
// One pause at a time: a second case's pause waits for the first to end.
import type { Machine } from '../protocols/machine.ts';
import { formatMs } from '../time/format.ts';
import { now } from '../time/deadline.ts';
import { openReplSession } from './repl-session.ts';

export interface PauseSettings {
  runId: string;
  outputDir: string;
  /** --debug: pause before each case's first step and on its failure. */
  debug: boolean;
  /** --pause-on-failure. */
  pauseOnFailure: boolean;
  /** The REPL on this process's terminal (stdin and stdout are TTYs); otherwise only `fleetlab attach`. */
  interactive: boolean;
  /** Without a terminal: how long a pause waits for an attach to answer (--pause-timeout). */
  timeoutMs: number;
  /** Prints a line for the user (stdout). */
  say(line: string): void;
}

export interface PauseRequest {
  caseId: string;
  /** Why it pauses: "before the first step", "ctx.pause(\"after the update\")", "failed: …". */
  why: string;
  machines: Record<string, Machine>;
  /** Names bound in the REPL (machines by role, ctx, net, step, error). */
  bindings: Record<string, unknown>;
  /** The run's: an interrupt ends the pause. */
  signal: AbortSignal;
}

/** How a pause ended, and how long it lasted (waiting for another case's pause included), for the case's output. */
export interface PauseOutcome {
  answer: 'continue' | 'abort' | 'timeout' | 'interrupted';
  ms: number;
}

const COMMANDS = { continue: 'Resume the scenario', abort: 'End the case as failed' };

export class Pauses {
  readonly settings: PauseSettings;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(settings: PauseSettings) {
    this.settings = settings;
  }

  /** Whether a failed case pauses before its machines go. */
  get onFailure(): boolean {
    return this.settings.debug || this.settings.pauseOnFailure;
  }

  /** Pauses the case until .continue, .abort, Ctrl-D (continue), the timeout without a terminal, or an interrupt. */
  pause(req: PauseRequest): Promise<PauseOutcome> {
    // Waiting for another case's pause to end counts as paused too.
    const t0 = now();
    const turn = this.queue.then(() => this.pauseNow(req, t0));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async pauseNow(req: PauseRequest, t0: number): Promise<PauseOutcome> {
    const s = this.settings;
    if (req.signal.aborted) return { answer: 'interrupted', ms: now() - t0 };
    const session = openReplSession({
      id: s.runId,
      kind: 'run',
      title: `${req.caseId}: ${req.why}`,
      outputDir: s.outputDir,
      machines: Object.values(req.machines),
      bindings: req.bindings,
      prompt: `fleetlab ${req.caseId.split('::').pop()}> `,
      commands: COMMANDS,
      banner: `\n⏸  paused ${req.caseId}: ${req.why}`,
      hint: s.interactive
        ? `  the REPL has ${Object.keys(req.bindings).join(', ')} bound; .continue resumes, .abort fails the case, Ctrl-D continues; fleetlab attach ${s.runId} from another terminal`
        : `  no terminal here: attach with  fleetlab attach ${s.runId}  within ${formatMs(s.timeoutMs)}; .continue resumes, .abort fails the case; then the case goes on`,
      local: s.interactive ? { terminal: true } : undefined,
      greeting: `attached to ${s.runId}: ${req.caseId}: paused ${req.why}\n.continue resumes, .abort fails the case, Ctrl-D detaches\n`,
      say: s.say,
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      if (!s.interactive) timer = setTimeout(() => r('timeout'), s.timeoutMs);
    });
    let onAbort!: () => void;
    const interrupted = new Promise<'interrupted'>((r) => req.signal.addEventListener('abort', (onAbort = () => r('interrupted')), { once: true }));
    // The terminal's Ctrl-D continues.
    const got = await Promise.race([session.ended.then((e) => ('command' in e ? (e.command as 'continue' | 'abort') : 'continue')), timedOut, interrupted]);
    req.signal.removeEventListener('abort', onAbort);
    clearTimeout(timer);
    session.close();
    s.say(`${s.interactive ? '\n' : ''}⏵  ${req.caseId}: ${got === 'timeout' ? `nobody answered within ${formatMs(s.timeoutMs)}: going on` : got === 'continue' ? 'resumed' : got === 'abort' ? 'aborted from the REPL' : 'interrupted'}`);
    return { answer: got, ms: now() - t0 };
  }
}
