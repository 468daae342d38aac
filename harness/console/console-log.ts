// Every byte a console prints, in a timestamped per-machine log, plus the recent lines for error messages.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

const RECENT_LINES = 200;
const NL = 0x0a;

/**
 * Writes a console's bytes to a file, one timestamped record per line, and remembers the last lines.
 *
 * The file keeps the guest's bytes as they came (no decoding, `\r` kept), so binary output survives. Each record is
 * `[  secs.mmm]`, a mark, the bytes, and `\n`. The mark says what that `\n` is:
 * - `' '`: a guest line; the guest printed the newline;
 * - `'~'`: a partial line written out after 200 ms of quiet; the guest printed no newline, the next record goes on;
 * - `'*'`: a note from fleetlab (`*--- fleetlab: …`), not guest output.
 * `decodeConsoleLog` turns a file back into exactly the bytes the guest printed.
 */
export class ConsoleLog {
  readonly path: string;
  private readonly out: WriteStream;
  private partial: Buffer = Buffer.alloc(0);
  private readonly recent: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  private flushTimer: NodeJS.Timeout | undefined;
  /** The text of partial records already written out for the line that is still open (its listeners saw them). */
  private carried = '';
  /** When the log began (epoch ms): its line stamps are seconds since. */
  readonly t0: number;
  /** Bytes written so far: where a case's slice of the log begins. */
  bytes = 0;

  constructor(path: string, t0 = Date.now()) {
    this.path = path;
    this.t0 = t0;
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: 'a' });
  }

  /** Feeds raw console output; complete lines are logged now, a partial line after 200 ms of quiet. */
  push(data: Buffer | string): void {
    let chunk = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.partial.length) chunk = Buffer.concat([this.partial, chunk]);
    let start = 0;
    for (let nl = chunk.indexOf(NL); nl >= 0; nl = chunk.indexOf(NL, start)) {
      this.guestRecord(chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    this.partial = Buffer.from(chunk.subarray(start));
    clearTimeout(this.flushTimer);
    if (this.partial.length) this.flushTimer = setTimeout(() => this.flushPartial(), 200).unref();
  }

  /** A note from fleetlab itself, marked so it cannot be mistaken for guest output; kept out of lastLines(). */
  note(text: string): void {
    this.flushPartial();
    this.write('*', Buffer.from(`--- fleetlab: ${text.replace(/\n/g, ' ⏎ ')}`));
  }

  /** Calls `fn` with every line logged from now on (partial lines once quiet); returns an unsubscribe function. */
  onLine(fn: (line: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The last `n` lines, partial line included, printable. */
  lastLines(n = 20): string[] {
    const lines = this.partial.length ? [...this.recent, text(this.partial)] : [...this.recent];
    return lines.slice(-n).map(printable);
  }

  /** Writes out any partial line and closes the file. */
  close(): Promise<void> {
    this.flushPartial();
    clearTimeout(this.flushTimer);
    return new Promise((resolve) => this.out.end(resolve));
  }

  private flushPartial(): void {
    if (!this.partial.length) return;
    const p = this.partial;
    this.partial = Buffer.alloc(0);
    this.guestRecord(p, false);
  }

  /**
   * One guest record; `newline` says whether the guest's own newline ended it. A line written out in pieces (quiet
   * in the middle, or a note from fleetlab in between) reaches the listeners and lastLines() whole as well: each
   * piece is passed on joined to the pieces before it, so a console check sees "An error occurred in stage 1 of the
   * boot process" even when a slow UART paused after "of".
   */
  private guestRecord(bytes: Buffer, newline: boolean): void {
    this.write(newline ? ' ' : '~', bytes);
    const piece = text(bytes);
    const joined = this.carried + piece;
    const line = newline ? joined.replace(/\r$/, '') : joined;
    if (this.carried) this.recent.pop();
    this.carried = newline ? '' : this.carried + piece;
    this.recent.push(line);
    if (this.recent.length > RECENT_LINES) this.recent.shift();
    for (const fn of this.listeners) fn(line);
  }

  private write(mark: ' ' | '~' | '*', bytes: Buffer): void {
    const stamp = ((Date.now() - this.t0) / 1000).toFixed(3).padStart(9);
    const head = Buffer.from(`[${stamp}]${mark}`);
    this.bytes += head.length + bytes.length + 1;
    this.out.write(Buffer.concat([head, bytes, Buffer.from('\n')]));
  }
}

/** The bytes a guest printed, from a console log file's content (records as ConsoleLog writes them; notes dropped). */
export function decodeConsoleLog(file: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  while (at < file.length) {
    // "[" stamp "]" mark bytes "\n": the stamp holds no "]", the bytes no newline.
    const close = file.indexOf(0x5d, at);
    const end = close < 0 ? -1 : file.indexOf(NL, close + 2);
    if (end < 0) break;
    const mark = file[close + 1];
    at = end + 1;
    if (mark === 0x2a) continue;
    out.push(file.subarray(close + 2, end));
    if (mark === 0x20) out.push(Buffer.from('\n'));
  }
  return Buffer.concat(out);
}

function text(b: Buffer): string {
  return b.toString('utf8');
}

/** Makes a console line safe to print: escapes control characters except tab. */
export function printable(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
