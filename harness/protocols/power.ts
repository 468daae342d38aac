// Power protocol: switch a machine on and off, cleanly or not.
import type { WaitOptions } from './wait-options.ts';

/** Powered or not, as far as the provider can tell. */
export type PowerState = 'on' | 'off';

/**
 * How reboot() reboots: 'command' runs the profile's reboot command in the guest (default); 'ctrl-alt-del' presses
 * Ctrl-Alt-Del on the machine's keyboard (NTD's reboot(); VMs only), which the guest's init turns into a reboot;
 * 'reset' is the reset button: no shutdown at all (a VM's system_reset; a board's power cycle).
 */
export type RebootVia = 'command' | 'ctrl-alt-del' | 'reset';

/** What Linux prints last when it powers off or halts: the sign a machine has shut down (when its power stays on). */
export const POWERED_OFF = /reboot: (Power down|System halted)/;

/** reboot()'s options: its budget and how. */
export type RebootOptions = WaitOptions & { via?: RebootVia };

/** Power control of a VM (QEMU process) or a board (relay, PDU). */
export interface Power {
  /** Powers on and starts booting. */
  start(opts?: WaitOptions): Promise<void>;
  /** Clean shutdown through the guest, then waits for power off. */
  shutdown(opts?: WaitOptions): Promise<void>;
  /** Cuts the power at once, like pulling the plug. */
  crash(): Promise<void>;
  /** Reboots (by default through the guest's reboot command) and waits until the machine's shell is back; resolves with the new boot count. */
  reboot(opts?: RebootOptions): Promise<number>;
  /**
   * Waits until the machine powers itself off (NTD's wait_for_shutdown), after a command such as `systemctl
   * poweroff`: a VM's QEMU exits, a board's kernel says "reboot: Power down" and fleetlab switches it off. From the
   * call on that is expected, not a death; a VM that had already powered itself off counts.
   */
  waitForShutdown(opts?: WaitOptions): Promise<void>;
  readonly powerState: PowerState;
}
