// Console protocol: a byte stream to read, write and expect text on (serial line, virtio console, board UART).
import type { WaitOptions } from './wait-options.ts';

/**
 * Options of an expect: with `quietMs`, only a match that ends the output and is followed by that much quiet counts
 * (prompts); with `literal`, a string pattern is plain text, not a regular expression.
 */
export interface ExpectOptions extends WaitOptions {
  quietMs?: number;
  /** Match a string pattern as plain text (by default a string is a regular expression, as in the NixOS test driver). */
  literal?: boolean;
}

/** A console a scenario can read, write and wait on, whether QEMU's or a lab board's. */
export interface Console {
  readonly name: string;
  /** Sends text or bytes to the console. */
  write(data: string | Buffer): Promise<void>;
  /**
   * Waits for text matching `pattern` in output not yet consumed by an earlier expect; throws TimeoutError when the
   * budget expires. A string is a regular expression (NTD's wait_for_console_text), plain text with `{ literal: true }`.
   */
  expect(pattern: RegExp | string, opts?: ExpectOptions): Promise<RegExpExecArray>;
  /** Forgets the output so far: the next expect sees only what comes after. */
  mark(): void;
  /** The last `n` lines printed, for messages. */
  lastLines(n?: number): string[];
}
