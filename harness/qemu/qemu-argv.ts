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
  dtb?: string;
  /** Per-machine copy of the EFI variable store. */
  efiVars?: string;
  /** Disks in boot order: the machine's overlays, or read-only ISOs. */
  disks?: LaunchDisk[];
  /** The machine's name for the guest through fw_cfg (opt/fleetlab/hostname), where the machine type has fw_cfg. */
  fwCfgHostname?: string;
  /** NICs on fleetlab's fabric: UDP on 127.0.0.1 to the switch's port for each (harness/net/fabric.ts). */
  nics?: Array<{ mac: string; qemuPort: number; switchPort: number }>;
  /** A file of "MAC ADDRESS/PREFIX" lines for the guest (fw_cfg opt/fleetlab/net). */
  netConfig?: string;
  /** A NIC on QEMU's user networking, restricted (no way out), whose only use is a forward of 127.0.0.1:hostPort to the guest's port 22. */
  hostLink?: { hostPort: number; mac: string };
  /**
   * Guest RAM as a named backend (RAM_BACKEND) a snapshot can share: `memfd`, shared, for a machine that may be
   * saved (its pages are copied into the snapshot's RAM file while it is stopped); `file`, that RAM file mapped
   * private, for a restored machine (copy-on-write: it holds only the pages it changes). Without it QEMU's own.
   */
  ram?: { kind: 'memfd' } | { kind: 'file'; path: string };
}

/** The id (and so the migration stream's RAM block name) of a machine's RAM backend: the same for the machine that saves and those that restore. */
export const RAM_BACKEND = 'fleetlab-ram';

/** One disk or CD-ROM of a launch. */
export interface LaunchDisk {
  path: string;
  format: string;
  media: 'disk' | 'cdrom';
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
  let machine = fw.kind === 'uefi' && fw.smm ? `${q.machine},smm=on` : q.machine;
  if (launch.ram) machine += `,memory-backend=${RAM_BACKEND}`;
  let accel = q.accelProps ? `${launch.accel},${q.accelProps}` : launch.accel;
  if (launch.accel === 'tcg' && q.tbSizeMiB) accel += `,tb-size=${q.tbSizeMiB}`;
  const args = ['-name', `${launch.name},process=fleetlab-${launch.name}`, '-machine', machine, '-accel', accel];
  const cpu = q.cpu ?? (launch.accel === 'kvm' ? 'host' : undefined);
  if (cpu) args.push('-cpu', cpu);
  args.push('-m', String(q.memoryMiB), '-smp', String(q.smp));
  const r = launch.ram;
  if (r) args.push('-object', r.kind === 'memfd' ? `memory-backend-memfd,id=${RAM_BACKEND},size=${q.memoryMiB}M,share=on` : `memory-backend-file,id=${RAM_BACKEND},size=${q.memoryMiB}M,mem-path=${r.path},share=off`);
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

  args.push(...diskArgs(profile, launch.disks ?? [], !!launch.kernel));
  if (launch.kernel) {
    args.push('-kernel', launch.kernel);
    if (launch.initrd) args.push('-initrd', launch.initrd);
    if (launch.dtb) args.push('-dtb', launch.dtb);
    if (launch.append) args.push('-append', launch.append);
  }
  if (launch.fwCfgHostname && fw.kind !== 'raspi') args.push('-fw_cfg', `name=opt/fleetlab/hostname,string=${launch.fwCfgHostname}`);
  (launch.nics ?? []).forEach((n, i) => {
    // Nothing but 127.0.0.1: the switch in the runner is the only peer a NIC has.
    args.push('-netdev', `dgram,id=net${i},local.type=inet,local.host=127.0.0.1,local.port=${n.qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${n.switchPort}`);
    args.push('-device', `${q.nicModel},netdev=net${i},mac=${n.mac}`);
  });
  if (launch.hostLink) {
    args.push('-netdev', `user,id=ssh0,restrict=on,hostfwd=tcp:127.0.0.1:${launch.hostLink.hostPort}-:22`);
    args.push('-device', `${q.nicModel},netdev=ssh0,mac=${launch.hostLink.mac}`);
  }
  if (launch.netConfig) args.push('-fw_cfg', `name=opt/fleetlab/net,file=${launch.netConfig}`);
  args.push(...q.extraArgs);
  return args;
}

/**
 * Drives and their devices on the profile's disk bus; CD-ROMs on the AHCI (x86) or virtio-scsi bus. With a direct
 * kernel boot the kernel takes boot index 0 on x86, so the disks get none (they are the kernel's, not the firmware's).
 */
function diskArgs(profile: MachineProfile, disks: LaunchDisk[], kernelBoot: boolean): string[] {
  const args: string[] = [];
  const bus = profile.qemu.diskBus;
  let scsi = false;
  let ide = 0;
  const scsiBus = () => {
    if (!scsi) args.push('-device', 'virtio-scsi-pci,id=scsi0');
    scsi = true;
    return 'scsi0.0';
  };
  disks.forEach((d, k) => {
    const id = `${d.media === 'cdrom' ? 'cd' : 'disk'}${k}`;
    const ro = d.media === 'cdrom' ? ',media=cdrom,readonly=on' : '';
    if (bus === 'sd') {
      args.push('-drive', `if=sd,index=${k},format=${d.format},file=${d.path}${ro}`);
      return;
    }
    args.push('-drive', `if=none,id=${id},format=${d.format},file=${d.path}${ro}`);
    const boot = kernelBoot ? '' : `,bootindex=${k}`;
    if (d.media === 'cdrom') {
      // The device's id (cd<k>-dev) is what QMP's eject names.
      if (profile.arch === 'x86_64' || profile.arch === 'i386' || bus === 'ahci') args.push('-device', `ide-cd,drive=${id},id=${id}-dev,bus=ide.${ide++}${boot}`);
      else args.push('-device', `scsi-cd,drive=${id},id=${id}-dev,bus=${scsiBus()}${boot}`);
    } else if (bus === 'virtio') {
      args.push('-device', `virtio-blk-pci,drive=${id}${boot}`);
    } else if (bus === 'ahci') {
      args.push('-device', `ide-hd,drive=${id},bus=ide.${ide++}${boot}`);
    } else {
      args.push('-device', `scsi-hd,drive=${id},bus=${scsiBus()}${boot}`);
    }
  });
  return args;
}

function virtioSerialDevice(profile: MachineProfile): string {
  if (profile.qemu.machine.startsWith('microvm')) return 'virtio-serial-device';
  return 'virtio-serial-pci';
}
