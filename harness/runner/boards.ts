// Lab boards for cases that run on them. The runner asks through this interface; lab/lab-session.ts answers (the
// inventory, leases, the Board machine), and the CLI hands it over, so the runner imports nothing of lab/.
import type { MachineProfile } from '../qemu/profile.ts';
import type { QemuMachine } from '../qemu/qemu-machine.ts';
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
  machine: QemuMachine;
  info: BoardInfo;
  /** Gives the board back; with `quarantine`, takes it out of service with that reason (a failed health check). */
  release(opts?: { quarantine?: string }): Promise<void>;
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
  lease(candidates: string[], opts: { role: string; logDir: string; deadline: Deadline; signal: AbortSignal; onConsoleLine?: (line: string) => void; onLost: (why: string) => void }): Promise<BoardLease | { skip: string }>;
}
