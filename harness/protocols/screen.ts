// Screen protocol: what a machine shows and the keys it is sent.
import type { WaitOptions } from './wait-options.ts';

/** A machine's display: screenshots and key presses. */
export interface Screen {
  /**
   * Writes a PNG of the screen and returns where: a bare name ("postboot", as NTD's screenshot(name)) goes into the
   * machine's folder of the case's output as `<name>.png` and is attached to the report; a path (with a `/`) is
   * written there (relative to the working directory).
   */
  screenshot(nameOrPath: string): Promise<string>;
  /** Presses keys: combos like "ctrl-alt-delete" or "ret", one per element. */
  sendKeys(...keys: string[]): Promise<void>;
  /**
   * The text on the screen, read by OCR (tesseract) from a screenshot: NTD's get_screen_text. OCR misreads now and
   * then (a 0 for an O): match what matters, loosely.
   */
  text(opts?: WaitOptions): Promise<string>;
  /** Waits until the screen's text (OCR, retried every 2 s) matches `pattern` (a string is a regex); NTD's wait_for_text. */
  waitForText(pattern: RegExp | string, opts?: WaitOptions & { literal?: boolean }): Promise<RegExpExecArray>;
  /** Types text as key presses ("\n" presses return). */
  typeText(text: string): Promise<void>;
}
