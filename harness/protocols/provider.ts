// Where a case's machines come from and where they go back: the runner asks a MachineProvider for each role and
// gives each machine back at the end of the try. The QEMU provider (harness/qemu/qemu-provider.ts) makes VMs; a lab
// (lab/lab-session.ts, the BoardProvider of harness/runner/boards.ts) leases boards. The runner knows neither's classes.
import type { ConsoleCheckSettings } from '../console/console-checks.ts';
import type { ManagedMachine } from './machine.ts';
import type { Deadline } from '../time/deadline.ts';

/** What the reports say of a board a case ran on. */
export interface BoardInfo {
  board: string;
  lab: string;
  serial: string;
  power: string;
  /** The lab host it hangs off: "lab host shelf1 (lab@10.0.0.5:22)". */
  host?: string;
}

/** What a role's machine is asked with, whatever provides it. */
export interface AcquireOptions {
  /** The role: the machine's name in the scenario, its logs and reports. */
  role: string;
  /** Where its console logs go. */
  logDir: string;
  /** The case's deadline, for a provider that waits (a lab whose boards are all leased). */
  deadline: Deadline;
  signal: AbortSignal;
  /** The scenario's console checks, on top of the profile's. */
  consoleChecks?: ConsoleCheckSettings;
  onConsoleLine?: (line: string) => void;
  /** Called when the machine is lost to the case while it runs (a board's lease could not be renewed). */
  onLost: (why: string) => void;
}

/** A machine a provider handed out for one try of a case. */
export interface AcquiredMachine {
  machine: ManagedMachine;
  /** Set for a lab board: what the reports say of it. */
  board?: BoardInfo;
  /** Stops the machine and gives it back; with `quarantine`, a board goes out of service with that reason. */
  release(opts?: { quarantine?: string }): Promise<void>;
}

/** Makes or leases the machine of a role from `request`; { skip } when none can be had for a reason the case reports. */
export interface MachineProvider<Request> {
  acquire(request: Request, opts: AcquireOptions): Promise<AcquiredMachine | { skip: string }>;
}
