// The life of something waits depend on (a QEMU process, a board's console): every wait on it races it, the way
// it races its deadline, so a death ends the wait at once with an error that says what was being awaited.
/** Why a lifeline ended; turns into the error a wait throws, naming what that wait awaited. */
export interface LifeEnd {
  /** The error for a wait on `awaited` that this end interrupted (a FleetlabError in practice; typed as Error so that
   * the clock does not depend on the error family, which depends on the clock). */
  during(awaited: string): Error;
}

/** Ends once; its signal aborts with the LifeEnd as reason. */
export class Lifeline {
  private readonly controller = new AbortController();
  private end: LifeEnd | undefined;

  /** Aborted when the life ends; pass it (merged with the caller's) to every wait. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get ended(): boolean {
    return this.end !== undefined;
  }

  /** Why it ended, if it has. */
  get reason(): LifeEnd | undefined {
    return this.end;
  }

  /** Ends the life; later calls keep the first reason. */
  finish(end: LifeEnd): void {
    if (this.end) return;
    this.end = end;
    this.controller.abort(end);
  }
}

/** True for a LifeEnd carried as an abort reason. */
export function isLifeEnd(v: unknown): v is LifeEnd {
  return typeof v === 'object' && v !== null && typeof (v as LifeEnd).during === 'function';
}

/** The error a wait on `awaited` throws when `signal` aborted: the life's end naming the wait, or the reason as is. */
export function abortError(signal: AbortSignal, awaited: string): unknown {
  const r: unknown = signal.reason;
  return isLifeEnd(r) ? r.during(awaited) : r;
}

/** `signal` and the lifeline's signal as one (either aborts it). */
export function withLife(signal: AbortSignal | undefined, life: Lifeline | undefined): AbortSignal | undefined {
  if (!life) return signal;
  if (!signal) return life.signal;
  return AbortSignal.any([signal, life.signal]);
}
