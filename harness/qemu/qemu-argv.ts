// Turns a profile plus run-time facts into QEMU's command line: a pure function, tested without QEMU.
import { join } from 'node:path';
import type { MachineProfile } from './profile.ts';

/** What a machine knows only when it starts. */
export interface QemuLaunch {
  name: string;
  runDir: string;
  accel: 'kvm' | 'tcg' | 'hvf';
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Per-machine copy of the EFI variable store. */
  efiVars?: string;
}

/** The QMP socket of a machine's run dir. */
export function qmpSocket(runDir: string): string {
  return join(runDir, 'qmp.sock');
}

/** The socket of console `name` in a machine's run dir. */
export function consoleSocket(runDir: string, name: string): string {
  return join(runDir, `${name}.sock`);
}

/** QEMU's arguments (without the binary) for `profile`; the VM starts paused (-S) so no console byte is missed. */
export function qemuArgv(profile: MachineProfile, launch: QemuLaunch): string[] {
  const q = profile.qemu;
  const fw = profile.firmware;
  const machine = fw.kind === 'uefi' && fw.smm ? `${q.machine},smm=on` : q.machine;
  const accel = q.accelProps ? `${launch.accel},${q.accelProps}` : launch.accel;
  const args = ['-name', `${launch.name},process=fleetlab-${launch.name}`, '-machine', machine, '-accel', accel];
  const cpu = q.cpu ?? (launch.accel === 'kvm' ? 'host' : undefined);
  if (cpu) args.push('-cpu', cpu);
  args.push('-m', String(q.memoryMiB), '-smp', String(q.smp));
  args.push('-nodefaults', '-no-user-config', '-display', 'none', '-S');
  args.push('-qmp', `unix:${qmpSocket(launch.runDir)},server=on,wait=off`);
  if (profile.display !== 'none') args.push('-vga', profile.display === 'virtio' ? 'virtio' : 'std');

  if (fw.kind === 'uefi') {
    if (fw.smm) args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${fw.code}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${launch.efiVars ?? fw.vars}`);
  } else if (fw.kind === 'bios-file') {
    args.push('-bios', fw.path);
  }

  let virtioSerial = false;
  for (const c of profile.consoles) {
    args.push('-chardev', `socket,id=${c.name},path=${consoleSocket(launch.runDir, c.name)},server=on,wait=off`);
    if (c.device === 'serial') {
      args.push('-serial', `chardev:${c.name}`);
    } else {
      if (!virtioSerial) {
        args.push('-device', `${virtioSerialDevice(profile)},id=vser0`);
        virtioSerial = true;
      }
      args.push('-device', `virtconsole,chardev=${c.name},bus=vser0.0`);
    }
  }

  if (launch.kernel) {
    args.push('-kernel', launch.kernel);
    if (launch.initrd) args.push('-initrd', launch.initrd);
    if (launch.append) args.push('-append', launch.append);
  }
  args.push(...q.extraArgs);
  return args;
}

function virtioSerialDevice(profile: MachineProfile): string {
  if (profile.qemu.machine.startsWith('microvm')) return 'virtio-serial-device';
  return 'virtio-serial-pci';
}
