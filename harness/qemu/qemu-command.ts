// How QEMU is launched: its binary, optionally under a wrapper command the user names, and placed on the host.
import { which } from './host-packages.ts';

/**
 * Where a QEMU process runs on the host. A fleet's VMs each get one host CPU (its main loop and its vCPU thread wake
 * each other on the same CPU, with no cross-CPU wakeup) and the batch scheduler (no wakeup preemption among many
 * mostly idle VMs): measured on a 16-node mesh, 29 % less CPU per idle node together with a broadcast window.
 */
export interface HostPlacement {
  /** The host CPU (0-based) every thread of it runs on (taskset -c). */
  cpu?: number;
  /** SCHED_BATCH for every thread (chrt -b 0). */
  batch?: boolean;
}

/**
 * `$FLEETLAB_QEMU_WRAPPER`, if set, is a command QEMU runs under, split on spaces: `taskset -c 2,3`, `nice -n 5`, or a
 * script that ends in `exec "$@"`. It must exec QEMU (not fork it), so the pid fleetlab supervises is QEMU's.
 * `placement` puts taskset and chrt (util-linux; both exec) before it, each only where the host has it.
 */
export function qemuCommand(binary: string, args: string[], placement: HostPlacement = {}): { file: string; args: string[] } {
  const wrapper = (process.env.FLEETLAB_QEMU_WRAPPER ?? '').trim().split(/\s+/).filter(Boolean);
  const prefix: string[] = [];
  if (placement.cpu !== undefined && which('taskset')) prefix.push('taskset', '-c', String(placement.cpu));
  if (placement.batch && which('chrt')) prefix.push('chrt', '-b', '0');
  const argv = [...prefix, ...wrapper, binary, ...args];
  return { file: argv[0]!, args: argv.slice(1) };
}
