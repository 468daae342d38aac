// A Console over a byte stream (a QEMU chardev socket, a serial port, a PTY), logging every byte.
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { ConfigurationError, TimeoutError, InfrastructureError, type ErrorKind } from '../errors/fleetlab-error.ts';
import type { Console, ExpectOptions } from '../protocols/console.ts';
import { deadlineFrom } from '../time/deadline.ts';
import { abortError, withLife, type Lifeline } from '../time/lifeline.ts';
import type { ConsoleLog } from './console-log.ts';

const MAX_BUFFER = 1024 * 1024;

interface Waiter {
  pattern: RegExp;
  /** Only a match at the end of the output followed by this much quiet counts (prompts). */
  quietMs?: number;
  quietTimer?: NodeJS.Timeout;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
}

/** A console fed from a stream that can be re-attached when the machine restarts. */
export class StreamConsole implements Console {
  readonly name: string;
  private readonly machine: string;
  private readonly log: ConsoleLog;
  private readonly life: () => Lifeline | undefined;
  private stream: Socket | undefined;
  private decoder = new StringDecoder('utf8');
  private buffer = '';
  private readonly waiters = new Set<Waiter>();
  /** Kind of error a timed-out expect throws: infrastructure for boot waits, test failure for scenario checks. */
  timeoutKind: ErrorKind = 'test-failure';

  /** `life` gives the lifeline of what feeds this console now (the QEMU process); every expect races it. */
  constructor(name: string, machine: string, log: ConsoleLog, life: () => Lifeline | undefined = () => undefined) {
    this.name = name;
    this.machine = machine;
    this.log = log;
    this.life = life;
  }

  /** Reads from `stream` from now on. */
  attach(stream: Socket): void {
    this.stream = stream;
    this.decoder = new StringDecoder('utf8');
    stream.on('data', (chunk: Buffer) => this.feed(chunk));
    stream.on('close', () => {
      if (this.stream === stream) this.stream = undefined;
    });
  }

  /** Stops reading; pending expects fail with `reason`. */
  detach(reason: string): void {
    this.stream?.destroy();
    this.stream = undefined;
    for (const w of this.waiters) w.reject(new InfrastructureError(`console ${this.name} of ${this.machine} closed: ${reason}`));
    this.waiters.clear();
  }

  /** Output that did not come from the stream (a board's UART read elsewhere, a test): logged and matched alike. */
  feed(chunk: Buffer): void {
    if (!chunk.length) return;
    this.log.push(chunk);
    this.buffer += this.decoder.write(chunk);
    if (this.buffer.length > MAX_BUFFER) this.buffer = this.buffer.slice(-MAX_BUFFER / 2);
    for (const w of this.waiters) this.tryMatch(w);
  }

  private tryMatch(w: Waiter): boolean {
    clearTimeout(w.quietTimer);
    w.pattern.lastIndex = 0;
    const m = w.pattern.exec(this.buffer);
    if (!m) return false;
    if (w.quietMs !== undefined) {
      // A prompt is only a prompt at a quiet end of output: more bytes within quietMs mean it was text in passing.
      if (m.index + m[0].length !== this.buffer.length) return false;
      w.quietTimer = setTimeout(() => this.settle(w, m), w.quietMs);
      return false;
    }
    this.settle(w, m);
    return true;
  }

  private settle(w: Waiter, m: RegExpExecArray): void {
    this.buffer = this.buffer.slice(m.index + m[0].length);
    this.waiters.delete(w);
    w.resolve(m);
  }

  async write(data: string | Buffer): Promise<void> {
    const s = this.stream;
    if (!s) {
      const life = this.life();
      if (life?.ended) throw life.reason!.during(`writing to console ${this.name}`);
      throw new InfrastructureError(`console ${this.name} of ${this.machine} is not connected (machine not running?)`);
    }
    await new Promise<void>((resolve, reject) => s.write(data, (err) => (err ? reject(err) : resolve())));
  }

  expect(pattern: RegExp | string, opts?: ExpectOptions): Promise<RegExpExecArray> {
    let re: RegExp;
    try {
      re = toPattern(pattern, !!opts?.literal, `console ${this.name}`);
    } catch (err) {
      return Promise.reject(err);
    }
    const deadline = deadlineFrom(opts, 60_000, `wait for ${re} on console ${this.name}`, 'pass { timeout } to expect()/waitForConsoleText()');
    const awaited = `console ${this.name} to print text matching ${re}${opts?.quietMs !== undefined ? ` at a quiet end of output (${opts.quietMs} ms)` : ''}`;
    const signal = withLife(opts?.signal, this.life());
    return new Promise<RegExpExecArray>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        clearTimeout(waiter.quietTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        pattern: re,
        quietMs: opts?.quietMs,
        resolve: (m) => {
          finish();
          resolve(m);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
      };
      const onAbort = () => {
        this.waiters.delete(waiter);
        waiter.reject(abortError(signal!, awaited) as Error);
      };
      if (signal?.aborted) return reject(abortError(signal, awaited));
      if (this.tryMatch(waiter)) return;
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(() => {
        this.waiters.delete(waiter);
        waiter.reject(new TimeoutError(this.timeoutKind, { awaited, deadline, machine: this.machine, lastLines: this.log.lastLines(20) }));
      }, deadline.remaining());
    });
  }

  /** The text not yet consumed by an expect (decoded), for checks that look without waiting. */
  pending(): string {
    return this.buffer;
  }

  mark(): void {
    this.buffer = '';
  }

  lastLines(n = 20): string[] {
    return this.log.lastLines(n);
  }
}

/** Escapes a literal string for use in a RegExp. */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `pattern` as a RegExp to exec once: a string as stringPattern() reads it, a RegExp without its global flag. */
export function toPattern(pattern: RegExp | string, literal: boolean, where: string): RegExp {
  return typeof pattern === 'string' ? stringPattern(pattern, literal, where) : new RegExp(pattern.source, pattern.flags.replace('g', ''));
}

/**
 * A string pattern as a regular expression: as the NixOS test driver reads one (a regex), or as plain text with
 * `literal`. A string that is no regex is a configuration error that names it and the literal form.
 */
function stringPattern(pattern: string, literal: boolean, where: string): RegExp {
  if (literal) return new RegExp(escapeRegExp(pattern));
  try {
    return new RegExp(pattern);
  } catch (err) {
    throw new ConfigurationError(`${where}: ${JSON.stringify(pattern)} is no regular expression (${(err as Error).message}); a string pattern is a regex, as in the NixOS test driver: pass { literal: true } to match it as plain text`, { details: { value: pattern } });
  }
}
