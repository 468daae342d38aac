// Systemd protocol: units of a machine whose init is systemd (NTD's wait_for_unit, systemctl, get_unit_info, …).
import type { ExecOptions, ExecResult } from './shell.ts';

/** Options of a systemd call: `user` asks that user's manager (`systemctl --user`, as the user, with their runtime directory). */
export type SystemdOptions = ExecOptions & { user?: string };

/** The states `systemctl show -p ActiveState` reports. */
export type UnitActiveState = 'active' | 'reloading' | 'inactive' | 'failed' | 'activating' | 'deactivating' | 'maintenance';

/**
 * Units on any machine whose init is systemd, VM or board. On a machine without systemd (no /run/systemd/system)
 * every call is a configuration error at once.
 */
export interface Systemd {
  /**
   * Waits until `unit` is active. A unit that is failed, or inactive with no job queued for any unit, ends the wait at
   * once with a TestFailure holding `systemctl status`. Default budget 900 s, as NTD's.
   */
  waitForUnit(unit: string, opts?: SystemdOptions & { intervalMs?: number }): Promise<void>;
  /** Runs `systemctl ARGS` (a shell word list, e.g. `'list-units --failed'`) and returns its result, whatever its exit code. */
  systemctl(args: string, opts?: SystemdOptions): Promise<ExecResult>;
  /** Every property `systemctl show UNIT` lists, by name (NTD's get_unit_info). */
  unitInfo(unit: string, opts?: SystemdOptions): Promise<Record<string, string>>;
  /** One property of `unit` (`systemctl show -p NAME`), e.g. 'ActiveState', 'MainPID', 'ExecMainStatus'. */
  unitProperty(unit: string, name: string, opts?: SystemdOptions): Promise<string>;
  /** Throws a TestFailure unless `unit`'s ActiveState is `state` (default 'active'). */
  requireUnitState(unit: string, state?: UnitActiveState, opts?: SystemdOptions): Promise<void>;
  /** `systemctl start UNIT`, which waits for the job; a TestFailure with `systemctl status` when the job fails. */
  startUnit(unit: string, opts?: SystemdOptions): Promise<void>;
  /** `systemctl stop UNIT`, which waits for the job; a TestFailure with `systemctl status` when it fails. */
  stopUnit(unit: string, opts?: SystemdOptions): Promise<void>;
}
