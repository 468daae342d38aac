// Test helper: what a child has printed so far, and waits for text in it.

/** Collects everything `stream` prints; until() waits for a match in what came after the last match. */
export class OutputWatch {
  text = '';
  private from = 0;
  private readonly waiters = new Set<() => void>();

  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (d: Buffer) => {
      this.text += d.toString();
      for (const w of this.waiters) w();
    });
  }

  /** The printed text up to the first match of `re` after the previous until()'s match; rejects after `ms` with what it saw. */
  until(re: RegExp, ms: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.text.slice(this.from));
        if (!m) return false;
        const upTo = this.text.slice(this.from, this.from + m.index + m[0].length);
        this.from += m.index + m[0].length;
        this.waiters.delete(check);
        clearTimeout(t);
        resolve(upTo);
        return true;
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`did not see ${re} within ${ms} ms; saw after the last match:\n${this.text.slice(this.from)}`));
      }, ms);
      if (!check()) this.waiters.add(check);
    });
  }
}
