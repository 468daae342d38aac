// Power protocol: switch a machine on and off, cleanly or not.
import type { WaitOptions } from './wait-options.ts';

/** Powered or not, as far as the provider can tell. */
export type PowerState = 'on' | 'off';

/** Power control of a VM (QEMU process) or a board (relay, PDU). */
export interface Power {
  /** Powers on and starts booting. */
  start(opts?: WaitOptions): Promise<void>;
  /** Clean shutdown through the guest, then waits for power off. */
  shutdown(opts?: WaitOptions): Promise<void>;
  /** Cuts the power at once, like pulling the plug. */
  crash(): Promise<void>;
  /** Reboots through the guest and waits until the machine is back; resolves with the new boot count. */
  reboot(opts?: WaitOptions): Promise<number>;
  readonly powerState: PowerState;
}
