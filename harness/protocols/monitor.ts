// Monitor protocol: a VM's QEMU monitor, typed (NTD's send_monitor_command and wait_for_qmp_event).
import type { WaitOptions } from './wait-options.ts';

/** A QMP event as QEMU sends it: its name, data and time. */
export interface MonitorEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** The QEMU monitor of a running VM (the `monitor` capability). */
export interface Monitor {
  /** Runs a human monitor (HMP) command, e.g. 'info status', and returns its output (NTD's send_monitor_command). */
  command(line: string): Promise<string>;
  /** Runs a QMP command and returns its return value, e.g. qmp('query-status'). */
  qmp<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
  /**
   * Waits for the next QMP event after the call that matches `filter`: its name ('RESET', 'SHUTDOWN', 'STOP'), or a
   * predicate on the event (NTD's wait_for_qmp_event). Default budget 600 s, as NTD's; ends when the machine dies.
   */
  waitForEvent(filter: string | ((e: MonitorEvent) => boolean), opts?: WaitOptions): Promise<MonitorEvent>;
}
