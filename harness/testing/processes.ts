// Test helpers that read the real process table: no QEMU, socat or ssh may outlive a run.
import type { ChildProcess } from 'node:child_process';
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

/** The pid a child prints on stdout as "<label> <pid>" (a fixture's QEMU or helper); rejects if the child exits first. */
export function printedPid(child: ChildProcess, label: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let out = '';
    const re = new RegExp(`${label} (\\d+)`);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`the child exited before printing "${label} <pid>" (${code}): ${out}`)));
  });
}

export { pidAlive } from '../process/pid-alive.ts';
