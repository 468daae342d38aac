// A machine's consoles, written once for VMs and boards: each console by name with its timestamped log (the main
// one, the serial console with kernel messages and the login, in <machine>.log; others in <machine>.<console>.log),
// the console checks watching every line, and the waits and writes scenarios use on them.
import { join } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import type { Lifeline } from '../time/lifeline.ts';
import { ConsoleCheckFired, consoleChecks, ConsoleWatcher, type ConsoleCheckHit, type ConsoleCheckSettings } from './console-checks.ts';
import { ConsoleLog } from './console-log.ts';
import { StreamConsole } from './stream-console.ts';

export interface ConsoleSetOptions {
  /** The machine's name: its logs' names and messages. */
  machine: string;
  logDir: string;
  /** The main console's name (the profile's serialConsole). */
  main: string;
  /** The other consoles' names. */
  others?: string[];
  /** The profile's console checks and the scenario's, in that order. */
  checks: Array<ConsoleCheckSettings | undefined>;
  /** The machine's current life: a wait on a console ends with it, and a console check that fires ends it. */
  life: () => Lifeline;
  /** True while the machine boots (until its shell answers): a check that fires then is an infrastructure error. */
  booting: () => boolean;
  /** Where fleetlab's notes go, and who hears that a check fired (not one a scenario expects). */
  note: (line: string) => void;
  onFired?: (hit: ConsoleCheckHit) => void;
}

export class ConsoleSet {
  /** The main console's log. */
  readonly log: ConsoleLog;
  private readonly main: string;
  private readonly consoles = new Map<string, StreamConsole>();
  private readonly logs = new Set<ConsoleLog>();
  private readonly watcher: ConsoleWatcher;
  private readonly o: ConsoleSetOptions;

  constructor(o: ConsoleSetOptions) {
    this.o = o;
    this.main = o.main;
    this.watcher = new ConsoleWatcher(consoleChecks(...o.checks), (hit) => this.fired(hit));
    this.log = this.newLog();
    for (const name of [o.main, ...(o.others ?? [])]) {
      const log = name === o.main ? this.log : this.newLog(name);
      log.onLine((line) => this.watcher.line(name, line));
      this.consoles.set(name, new StreamConsole(name, o.machine, log, o.life));
    }
  }

  /** A log of the machine's own, `<machine>.<name>.log` (or the main log's file without a name), closed with the set. */
  newLog(name?: string): ConsoleLog {
    const log = new ConsoleLog(join(this.o.logDir, name ? `${this.o.machine}.${name}.log` : `${this.o.machine}.log`));
    this.logs.add(log);
    return log;
  }

  /** A console by name (default: the main one). */
  get(name = this.main): StreamConsole {
    const c = this.consoles.get(name);
    if (!c) throw new ConfigurationError(`machine ${this.o.machine} has no console "${name}" (have: ${[...this.consoles.keys()].join(', ')})`);
    return c;
  }

  /** Every console, for attaching and detaching their streams. */
  all(): StreamConsole[] {
    return [...this.consoles.values()];
  }

  /** A console check matched: the machine's life ends, so whatever waits on it fails now with the lines. */
  private fired(hit: ConsoleCheckHit): void {
    this.o.note(`console check "${hit.check.name}" fired on ${hit.console}: ${hit.line}`);
    this.o.life().finish(new ConsoleCheckFired(this.o.machine, hit, this.o.booting() ? 'infrastructure' : 'test-failure'));
    this.o.onFired?.(hit);
  }

  /** A new life (the machine started again): checks may fire again. */
  newLife(): void {
    this.watcher.reset();
  }

  /** Runs `fn` with check `name` silenced, for a step that provokes it; resolves once the check matched. */
  expectCheck(name: string, fn: () => Promise<unknown>, opts?: WaitOptions): Promise<ConsoleCheckHit> {
    return this.watcher.expect(name, fn, opts, { machine: this.o.machine, life: this.o.life(), lastLines: () => this.log.lastLines(20) });
  }

  /** Flushes and closes every log. */
  async close(): Promise<void> {
    await Promise.all([...this.logs].map((l) => l.close()));
  }
}
