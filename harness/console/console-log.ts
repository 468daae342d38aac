// Every byte a console prints, in a timestamped per-machine log, plus the recent lines for error messages.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

const RECENT_LINES = 200;

/** Writes a console's bytes to a file, one timestamped line at a time, and remembers the last lines. */
export class ConsoleLog {
  readonly path: string;
  private readonly out: WriteStream;
  private partial = '';
  private readonly recent: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly t0: number;
  /** Bytes written so far: where a case's slice of the log begins. */
  bytes = 0;

  constructor(path: string, t0 = Date.now()) {
    this.path = path;
    this.t0 = t0;
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: 'a' });
  }

  /** Feeds raw console output; complete lines are logged now, a partial line after 200 ms of quiet. */
  push(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) this.line(line.replace(/\r$/, ''));
    clearTimeout(this.flushTimer);
    if (this.partial) this.flushTimer = setTimeout(() => this.flushPartial(), 200).unref();
  }

  /** A note from fleetlab itself, marked so it cannot be mistaken for guest output; kept out of lastLines(). */
  note(text: string): void {
    this.flushPartial();
    this.line(`--- fleetlab: ${text}`, false);
  }

  /** Calls `fn` with every line logged from now on; returns an unsubscribe function. */
  onLine(fn: (line: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The last `n` lines, partial line included. */
  lastLines(n = 20): string[] {
    const lines = this.partial ? [...this.recent, this.partial] : [...this.recent];
    return lines.slice(-n).map(printable);
  }

  /** Writes out any partial line and closes the file. */
  close(): Promise<void> {
    this.flushPartial();
    clearTimeout(this.flushTimer);
    return new Promise((resolve) => this.out.end(resolve));
  }

  private flushPartial(): void {
    if (!this.partial) return;
    const p = this.partial;
    this.partial = '';
    this.line(p.replace(/\r$/, ''));
  }

  private line(line: string, fromGuest = true): void {
    const stamp = ((Date.now() - this.t0) / 1000).toFixed(3).padStart(9);
    const entry = `[${stamp}] ${line}\n`;
    this.bytes += Buffer.byteLength(entry);
    this.out.write(entry);
    if (!fromGuest) return;
    this.recent.push(line);
    if (this.recent.length > RECENT_LINES) this.recent.shift();
    for (const fn of this.listeners) fn(line);
  }
}

/** Makes a console line safe to print: escapes control characters except tab. */
export function printable(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
