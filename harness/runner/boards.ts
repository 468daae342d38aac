// Lab boards for cases that run on them. The runner asks through this interface; lab/lab-session.ts answers (the
// inventory, leases, the Board machine), and the CLI hands it over, so the runner imports nothing of lab/.
import type { MachineProfile } from '../qemu/profile.ts';
import type { ConsoleCheckSettings } from '../console/console-checks.ts';
import type { ManagedMachine } from '../protocols/machine.ts';
import type { Deadline } from '../time/deadline.ts';

/** What the reports say of a board a case ran on. */
export interface BoardInfo {
  board: string;
  lab: string;
  serial: string;
  power: string;
}

/** A leased board, made into the case's machine; renewed until released. */
export interface BoardLease {
  machine: ManagedMachine;
  info: BoardInfo;
  /** Gives the board back; with `quarantine`, takes it out of service with that reason (a failed health check). */
  release(opts?: { quarantine?: string }): Promise<void>;
}

/** What a case asks of a board lease: the role it plays, where its log goes, its console checks, its deadline. */
export interface BoardLeaseOptions {
  role: string;
  logDir: string;
  deadline: Deadline;
  signal: AbortSignal;
  onConsoleLine?: (line: string) => void;
  /** The scenario's console checks, on top of the board profile's. */
  consoleChecks?: ConsoleCheckSettings;
  onLost: (why: string) => void;
}

export interface BoardProvider {
  /** The lab's name and file, for messages. */
  readonly label: string;
  /** The boards a selector (board:<name>, tag:<tag>) names; a ConfigurationError when none. */
  candidates(selector: string): string[];
  /** A board's profile, validated. */
  profileOf(board: string): Promise<MachineProfile>;
  /**
   * Leases one of `candidates` for a case, waiting while all are leased by others (within `deadline`), and builds its
   * machine. When every candidate is reserved by someone else or quarantined, answers { skip } with the reason.
   * `onLost` is called if the lease cannot be renewed (it expired and was taken).
   */
  lease(candidates: string[], opts: BoardLeaseOptions): Promise<BoardLease | { skip: string }>;
}
