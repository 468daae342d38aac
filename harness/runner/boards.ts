// Lab boards for cases that run on them. The runner asks through this interface; lab/lab-session.ts answers (the
// inventory, leases, the Board machine), and the CLI hands it over, so the runner imports nothing of lab/.
import type { MachineProfile } from '../qemu/profile.ts';
import type { AcquiredMachine, AcquireOptions, MachineProvider } from '../protocols/provider.ts';

export type { BoardInfo } from '../protocols/provider.ts';

/**
 * A lab as a MachineProvider whose request is the candidate boards of a role: acquire() leases one of them for a case,
 * waiting while all are leased by others (within the case's deadline), and builds its machine; when every candidate
 * is reserved by someone else or quarantined, it answers { skip } with the reason. The lease is renewed until the
 * machine is released; `onLost` is called if it cannot be (it expired and was taken).
 */
export interface BoardProvider extends MachineProvider<string[]> {
  /** The lab's name and file, for messages. */
  readonly label: string;
  /** The boards a selector (board:<name>, tag:<tag>) names; a ConfigurationError when none. */
  candidates(selector: string): string[];
  /** A board's profile, validated. */
  profileOf(board: string): Promise<MachineProfile>;
  acquire(candidates: string[], opts: AcquireOptions): Promise<(AcquiredMachine & { board: NonNullable<AcquiredMachine['board']> }) | { skip: string }>;
}
