// How QEMU is launched: its binary, optionally under a wrapper command the user names.
/**
 * `$FLEETLAB_QEMU_WRAPPER`, if set, is a command QEMU runs under, split on spaces: `taskset -c 2,3`, `nice -n 5`, or a
 * script that ends in `exec "$@"`. It must exec QEMU (not fork it), so the pid fleetlab supervises is QEMU's.
 */
export function qemuCommand(binary: string, args: string[]): { file: string; args: string[] } {
  const wrapper = (process.env.FLEETLAB_QEMU_WRAPPER ?? '').trim().split(/\s+/).filter(Boolean);
  if (!wrapper.length) return { file: binary, args };
  return { file: wrapper[0]!, args: [...wrapper.slice(1), binary, ...args] };
}
