// A Console over a byte stream (a QEMU chardev socket, a serial port, a PTY), logging every byte.
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { TimeoutError, InfrastructureError, type ErrorKind } from '../errors/fleetlab-error.ts';
import type { Console } from '../protocols/console.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom } from '../time/deadline.ts';
import type { ConsoleLog } from './console-log.ts';

const MAX_BUFFER = 1024 * 1024;

interface Waiter {
  pattern: RegExp;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
}

/** A console fed from a stream that can be re-attached when the machine restarts. */
export class StreamConsole implements Console {
  readonly name: string;
  private readonly machine: string;
  private readonly log: ConsoleLog;
  private stream: Socket | undefined;
  private decoder = new StringDecoder('utf8');
  private buffer = '';
  private readonly waiters = new Set<Waiter>();
  /** Kind of error a timed-out expect throws: infrastructure for boot waits, test failure for scenario checks. */
  timeoutKind: ErrorKind = 'test-failure';

  constructor(name: string, machine: string, log: ConsoleLog) {
    this.name = name;
    this.machine = machine;
    this.log = log;
  }

  /** Reads from `stream` from now on. */
  attach(stream: Socket): void {
    this.stream = stream;
    this.decoder = new StringDecoder('utf8');
    stream.on('data', (chunk: Buffer) => this.feed(this.decoder.write(chunk)));
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

  private feed(text: string): void {
    if (!text) return;
    this.log.push(text);
    this.buffer += text;
    if (this.buffer.length > MAX_BUFFER) this.buffer = this.buffer.slice(-MAX_BUFFER / 2);
    for (const w of this.waiters) this.tryMatch(w);
  }

  private tryMatch(w: Waiter): boolean {
    w.pattern.lastIndex = 0;
    const m = w.pattern.exec(this.buffer);
    if (!m) return false;
    this.buffer = this.buffer.slice(m.index + m[0].length);
    this.waiters.delete(w);
    w.resolve(m);
    return true;
  }

  async write(data: string | Buffer): Promise<void> {
    const s = this.stream;
    if (!s) throw new InfrastructureError(`console ${this.name} of ${this.machine} is not connected (machine not running?)`);
    await new Promise<void>((resolve, reject) => s.write(data, (err) => (err ? reject(err) : resolve())));
  }

  expect(pattern: RegExp | string, opts?: WaitOptions): Promise<RegExpExecArray> {
    const re = typeof pattern === 'string' ? new RegExp(escapeRegExp(pattern)) : new RegExp(pattern.source, pattern.flags.replace('g', ''));
    const deadline = deadlineFrom(opts, 60_000, `wait for ${re} on console ${this.name}`, 'pass { timeout } to expect()/waitForConsoleText()');
    return new Promise<RegExpExecArray>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        opts?.signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        pattern: re,
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
        waiter.reject(opts!.signal!.reason);
      };
      if (opts?.signal?.aborted) return reject(opts.signal.reason);
      if (this.tryMatch(waiter)) return;
      this.waiters.add(waiter);
      opts?.signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(() => {
        this.waiters.delete(waiter);
        waiter.reject(
          new TimeoutError(this.timeoutKind, {
            awaited: `console ${this.name} to print text matching ${re}`,
            deadline,
            machine: this.machine,
            lastLines: this.log.lastLines(20),
          }),
        );
      }, deadline.remaining());
    });
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
