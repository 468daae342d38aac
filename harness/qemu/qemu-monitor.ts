// The `monitor` capability of a QemuMachine: HMP and QMP commands and QMP events, on whichever QEMU process runs now.
import { TimeoutError } from '../errors/fleetlab-error.ts';
import type { Monitor, MonitorEvent } from '../protocols/monitor.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom, raceDeadline } from '../time/deadline.ts';
import type { QmpClient } from './qmp.ts';

/** What the monitor needs of its machine. */
export interface MonitorHost {
  readonly name: string;
  readonly log: { lastLines(n?: number): string[] };
  /** The running QEMU's QMP, or the error that says why there is none. */
  requireQmp(what: string): QmpClient;
  /** `signal` joined with the machine's life. */
  lifeSignal(signal?: AbortSignal): AbortSignal;
}

export class QemuMonitor implements Monitor {
  private readonly m: MonitorHost;

  constructor(host: MonitorHost) {
    this.m = host;
  }

  command(line: string): Promise<string> {
    return this.m.requireQmp(`run monitor command "${line}"`).hmp(line);
  }

  qmp<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.m.requireQmp(`run QMP command ${command}`).execute<T>(command, args);
  }

  async waitForEvent(filter: string | ((e: MonitorEvent) => boolean), opts?: WaitOptions): Promise<MonitorEvent> {
    const match = typeof filter === 'string' ? (e: MonitorEvent) => e.event === filter : filter;
    const awaited = `QMP event ${typeof filter === 'string' ? filter : 'matching the filter'}`;
    const deadline = deadlineFrom(opts, 600_000, `wait for ${awaited} on ${this.m.name}`, 'pass { timeout } to waitForEvent');
    const client = this.m.requireQmp(`wait for ${awaited}`);
    let listener: (e: MonitorEvent) => void = () => undefined;
    const seen = new Promise<MonitorEvent>((resolve) => {
      listener = (e) => {
        if (match(e)) resolve(e);
      };
      client.on('event', listener);
    });
    try {
      const r = await raceDeadline(seen, deadline, this.m.lifeSignal(opts?.signal), awaited);
      if (r.timedOut) throw new TimeoutError('test-failure', { awaited, deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20) });
      return r.value;
    } finally {
      client.off('event', listener);
    }
  }
}
