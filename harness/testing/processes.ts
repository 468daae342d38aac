// Test helpers that read the real process table: no QEMU, socat or ssh may outlive a run.
import { readFileSync, readdirSync } from 'node:fs';

/** Processes whose command line contains `needle` (and whose environment holds `environ`, if given), as [pid, cmdline]. */
export function processesMatching(needle: string, opts: { environ?: string } = {}): Array<[number, string]> {
  const found: Array<[number, string]> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (!cmd.includes(needle) || Number(d) === process.pid) continue;
      if (opts.environ && !readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').includes(opts.environ)) continue;
      found.push([Number(d), cmd]);
    } catch {
      /* gone */
    }
  }
  return found;
}

export { pidAlive } from '../process/pid-alive.ts';
