// What a machine costs the host: a VM's QEMU process's CPU time and memory (from /proc), the host's memory, and an
// idle window over a fleet: each machine's share of a core and its PSS while nothing is asked of it.
import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';

/** One host process's use of the host at one moment. */
export interface ProcessUsage {
  pid: number;
  /** User plus system CPU time since it started (all its threads), in seconds. */
  cpuSeconds: number;
  /** Resident memory, and its proportional share (shared pages split among the processes that map them), in MiB. */
  rssMiB: number;
  pssMiB: number;
}

/** The host process behind a machine (a VM's QEMU): its pid while it runs, what it uses, and where it runs. */
export interface HostProcess {
  readonly pid: number | undefined;
  /** Where its next process starts on the host: one CPU, the batch scheduler (set for a fleet's VMs by the runner). */
  placement: { cpu?: number; batch?: boolean } | undefined;
  /** Its CPU time and memory now; undefined while it does not run. */
  usage(): ProcessUsage | undefined;
}

const CLOCK_TICKS = 100; // Linux's USER_HZ on every architecture this runs on (sysconf(_SC_CLK_TCK))

/** Process `pid`'s CPU time and memory, or undefined when it is gone. */
export function processUsage(pid: number): ProcessUsage | undefined {
  try {
    // The fields after the command name (which may hold spaces): utime and stime are the 12th and 13th of them.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()!.split(' ');
    const kb = Object.fromEntries([...readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)].map((x) => [x[1]!, Number(x[2])]));
    return { pid, cpuSeconds: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS, rssMiB: (kb.Rss ?? 0) / 1024, pssMiB: (kb.Pss ?? 0) / 1024 };
  } catch {
    return undefined;
  }
}

/** The host process of `pid()` (read when asked: a machine's QEMU changes across restarts). */
export function hostProcessOf(pid: () => number | undefined): HostProcess {
  return {
    get pid() {
      return pid();
    },
    placement: undefined,
    usage: () => {
      const p = pid();
      return p === undefined ? undefined : processUsage(p);
    },
  };
}

/**
 * The host's memory: total, available (MemAvailable: what can be had without swapping, page cache included) and in
 * use (the difference), in whole MiB. Not Linux: the free memory stands for the available.
 */
export function hostMemory(): { totalMiB: number; availableMiB: number; usedMiB: number } {
  const mib = (bytes: number) => Math.floor(bytes / 2 ** 20);
  let info = '';
  try {
    info = readFileSync('/proc/meminfo', 'utf8');
  } catch {
    // Not Linux: os.totalmem()/freemem() below.
  }
  const bytes = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(info);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const totalMiB = mib(bytes('MemTotal') ?? totalmem());
  const availableMiB = mib(bytes('MemAvailable') ?? freemem());
  return { totalMiB, availableMiB, usedMiB: totalMiB - availableMiB };
}

/** The peak of the host's memory in use over a while, sampled every `everyMs`: start(), then stop() for the figures. */
export class MemoryPeak {
  private timer: NodeJS.Timeout | undefined;
  private readonly everyMs: number;
  readonly startMiB: number;
  peakMiB: number;
  constructor(everyMs = 1000) {
    this.everyMs = everyMs;
    this.startMiB = this.peakMiB = hostMemory().usedMiB;
  }
  start(): this {
    this.timer = setInterval(() => this.sample(), this.everyMs).unref();
    return this;
  }
  private sample(): void {
    this.peakMiB = Math.max(this.peakMiB, hostMemory().usedMiB);
  }
  /** Stops sampling; the host's memory in use when it began and at its peak (a last sample taken now). */
  stop(): { startMiB: number; peakMiB: number; totalMiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { startMiB: this.startMiB, peakMiB: this.peakMiB, totalMiB: hostMemory().totalMiB };
  }
}

/** What idleUsage() measured over its window. */
export interface IdleUsage {
  seconds: number;
  /** Each machine's share of one core (%) over the window, and its PSS and RSS at the end. */
  machines: Array<{ name: string; cpuPct: number; pssMiB: number; rssMiB: number }>;
  /** Mean and largest of the machines' figures. */
  cpuPct: { mean: number; max: number };
  pssMiB: { mean: number; max: number };
  /** The switch's share of a core (of the whole network, not per machine), when a switch was given. */
  switchCpuPct?: number;
}

/**
 * Measures `machines` idling for `seconds`: the CPU time their host processes take (a share of one core each) and
 * their memory. For VMs (hostProcess capability): a machine without one, or one that stops in the window, is an error.
 * `switchProcess` adds the switch the frames go through (ctx.net.switchProcess) to the window.
 */
export async function idleUsage(machines: Array<{ name: string; hostProcess?: HostProcess }>, opts: { seconds: number; switchProcess?: HostProcess; signal?: AbortSignal }): Promise<IdleUsage> {
  if (!(opts.seconds > 0)) throw new TypeError(`idleUsage: seconds must be above 0, not ${opts.seconds}`);
  if (!machines.length) throw new TypeError('idleUsage: give it at least one machine');
  const now = (what: string, h: HostProcess | undefined) => {
    const u = h?.usage();
    if (!u) throw new Error(`idleUsage: ${what} ${h ? 'is not running' : 'has no host process (only a VM has one)'}`);
    return u;
  };
  const first = machines.map((m) => now(`machine ${m.name}`, m.hostProcess));
  const sw0 = opts.switchProcess?.usage();
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const abort = () => (clearTimeout(t), reject(opts.signal!.reason));
    const t = setTimeout(() => (opts.signal?.removeEventListener('abort', abort), resolve()), opts.seconds * 1000);
    opts.signal?.addEventListener('abort', abort, { once: true });
  });
  const secs = (performance.now() - t0) / 1000;
  const rows = machines.map((m, i) => {
    const u = now(`machine ${m.name}`, m.hostProcess);
    if (u.pid !== first[i]!.pid) throw new Error(`idleUsage: machine ${m.name} restarted during the window`);
    return { name: m.name, cpuPct: round(((u.cpuSeconds - first[i]!.cpuSeconds) / secs) * 100), pssMiB: round(u.pssMiB), rssMiB: round(u.rssMiB) };
  });
  const stats = (xs: number[]) => ({ mean: round(xs.reduce((a, b) => a + b, 0) / xs.length), max: round(Math.max(...xs)) });
  const sw1 = opts.switchProcess?.usage();
  return {
    seconds: round(secs),
    machines: rows,
    cpuPct: stats(rows.map((r) => r.cpuPct)),
    pssMiB: stats(rows.map((r) => r.pssMiB)),
    ...(sw0 && sw1 ? { switchCpuPct: round(((sw1.cpuSeconds - sw0.cpuSeconds) / secs) * 100) } : {}),
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
