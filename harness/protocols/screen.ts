// Screen protocol: what a machine shows and the keys it is sent.

/** A machine's display: screenshots and key presses. */
export interface Screen {
  /** Writes a PNG of the screen to `path`. */
  screenshot(path: string): Promise<void>;
  /** Presses keys: combos like "ctrl-alt-delete" or "ret", one per element. */
  sendKeys(...keys: string[]): Promise<void>;
  /** Types text as key presses ("\n" presses return). */
  typeText(text: string): Promise<void>;
}
