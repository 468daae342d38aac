// Screen protocol: what a machine shows and the keys it is sent.

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
  /** Types text as key presses ("\n" presses return). */
  typeText(text: string): Promise<void>;
}
