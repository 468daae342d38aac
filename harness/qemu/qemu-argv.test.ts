import { describe, expect, it } from 'vitest';
import base from '../../machines/x86_64-direct.ts';
import { loadProfile, validateProfile } from './profile-loader.ts';
import { extendProfile } from './profile.ts';
import { qemuArgv } from './qemu-argv.ts';
import { comboToQcodes, textToCombos } from './qemu-keys.ts';

const launch = { name: 'm1', runDir: '/run/x', accel: 'tcg' as const, kernel: '/k', initrd: '/i', append: 'console=ttyS0' };

describe('qemuArgv', () => {
  it('starts paused with QMP and one socket chardev per console', () => {
    const argv = qemuArgv(validateProfile(base, 'base'), launch).join(' ');
    expect(argv).toContain('-S');
    expect(argv).toContain('-qmp unix:/run/x/qmp.sock,server=on,wait=off');
    expect(argv).toContain('-chardev socket,id=serial0,path=/run/x/serial0.sock,server=on,wait=off -serial chardev:serial0');
    expect(argv).toContain('-device virtio-serial-pci,id=vser0 -device virtconsole,chardev=hvc0,bus=vser0.0');
    expect(argv).toContain('-kernel /k -initrd /i -append console=ttyS0');
    expect(argv).toContain('-accel tcg');
    expect(argv).not.toContain('-cpu');
  });

  it('uses -cpu host under KVM unless the profile names a CPU', () => {
    const p = validateProfile(base, 'base');
    expect(qemuArgv(p, { ...launch, accel: 'kvm' })).toEqual(expect.arrayContaining(['-cpu', 'host']));
    const named = validateProfile(extendProfile(base, { name: 'x', qemu: { cpu: 'qemu64' } }), 'x');
    expect(qemuArgv(named, { ...launch, accel: 'kvm' })).toEqual(expect.arrayContaining(['-cpu', 'qemu64']));
  });

  it('x86_64-micro: no VGA, 160 MiB, its translation cache capped under TCG; no TCG property under KVM', async () => {
    const micro = validateProfile((await import('../../machines/x86_64-micro.ts')).default, 'x86_64-micro');
    expect(qemuArgv(micro, launch)).not.toContain('-vga');
    expect(qemuArgv(validateProfile(base, 'base'), launch)).toEqual(expect.arrayContaining(['-vga', 'std']));
    expect(qemuArgv(micro, launch)).toEqual(expect.arrayContaining(['-m', '160']));
    expect(qemuArgv(micro, launch)).toEqual(expect.arrayContaining(['-accel', 'tcg,tb-size=16']));
    expect(qemuArgv(micro, { ...launch, accel: 'kvm' })).toEqual(expect.arrayContaining(['-accel', 'kvm']));
  });

  it('UEFI firmware: read-only code and a per-machine variable store; SMM when the firmware needs it', () => {
    const p = validateProfile(extendProfile(base, { name: 'u', firmware: { kind: 'uefi', code: '/c.fd', vars: '/v.fd', package: 'ovmf', smm: true } }), 'u');
    const argv = qemuArgv(p, { ...launch, efiVars: '/mine.fd' }).join(' ');
    expect(argv).toContain('-machine q35,smm=on');
    expect(argv).toContain('if=pflash,format=raw,unit=0,readonly=on,file=/c.fd');
    expect(argv).toContain('if=pflash,format=raw,unit=1,file=/mine.fd');
    expect(argv).toContain('driver=cfi.pflash01,property=secure,value=on');
  });

  it('disks: overlays on the profile bus in boot order, ISOs as read-only CD-ROMs; fw_cfg carries the name', () => {
    const disks = [
      { path: '/s/disk0.qcow2', format: 'qcow2', media: 'disk' as const },
      { path: '/u/installer.iso', format: 'raw', media: 'cdrom' as const },
    ];
    // A firmware boot: no kernel, so the disks carry the boot order.
    const firmwareBoot = { name: 'm1', runDir: '/run/x', accel: 'tcg' as const };
    const virtio = qemuArgv(validateProfile(base, 'base'), { ...firmwareBoot, disks, fwCfgHostname: 'm1' }).join(' ');
    expect(virtio).toContain('-drive if=none,id=disk0,format=qcow2,file=/s/disk0.qcow2 -device virtio-blk-pci,drive=disk0,bootindex=0');
    expect(virtio).toContain('-drive if=none,id=cd1,format=raw,file=/u/installer.iso,media=cdrom,readonly=on -device ide-cd,drive=cd1,id=cd1-dev,bus=ide.0,bootindex=1');
    expect(virtio).toContain('-fw_cfg name=opt/fleetlab/hostname,string=m1');
    const sata = qemuArgv(validateProfile(extendProfile(base, { name: 's', qemu: { diskBus: 'ahci' } }), 's'), { ...firmwareBoot, disks: disks.slice(0, 1) }).join(' ');
    expect(sata).toContain('-device ide-hd,drive=disk0,bus=ide.0,bootindex=0');
    const arm = validateProfile(extendProfile(base, { name: 'a', arch: 'aarch64', qemu: { binary: 'qemu-system-aarch64', machine: 'virt', diskBus: 'scsi' } }), 'a');
    const scsi = qemuArgv(arm, { ...firmwareBoot, disks }).join(' ');
    expect(scsi).toContain('-drive if=none,id=disk0,format=qcow2,file=/s/disk0.qcow2 -device virtio-scsi-pci,id=scsi0 -device scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0');
    expect(scsi).toContain('-device scsi-cd,drive=cd1,id=cd1-dev,bus=scsi0.0,bootindex=1');
    expect(scsi.match(/virtio-scsi-pci/g)).toHaveLength(1);
  });

  it("a direct kernel boot with a disk (NixOS's build-vm shape) gives the disk no boot index: the kernel has index 0", () => {
    const argv = qemuArgv(validateProfile(base, 'base'), { ...launch, disks: [{ path: '/s/root.qcow2', format: 'qcow2', media: 'disk' }] }).join(' ');
    expect(argv).toContain('-device virtio-blk-pci,drive=disk0 ');
    expect(argv).not.toContain('bootindex');
    expect(argv).toContain('-kernel /k -initrd /i -append console=ttyS0');
  });

  it('the Pi: SD card slot, device tree, no fw_cfg', async () => {
    const pi = await loadProfile('raspi3b');
    const argv = qemuArgv(pi, { ...launch, dtb: '/d.dtb', disks: [{ path: '/s/sd.qcow2', format: 'qcow2', media: 'disk' }], fwCfgHostname: 'm1' }).join(' ');
    expect(argv).toContain('-machine raspi3b -accel tcg,thread=single');
    expect(argv).toContain('-drive if=sd,index=0,format=qcow2,file=/s/sd.qcow2');
    expect(argv).toContain('-dtb /d.dtb');
    expect(argv).not.toContain('-fw_cfg');
    expect(argv).not.toContain('-vga');
  });

  it('extendProfile merges objects and replaces a union member of another kind', () => {
    const p = extendProfile(base, { name: 'big', qemu: { memoryMiB: 1024 } });
    expect(p.qemu.memoryMiB).toBe(1024);
    expect(p.qemu.binary).toBe('qemu-system-x86_64');
    const d = extendProfile(base, { name: 'd', boot: { kind: 'disk', image: '/i.img' } });
    expect(d.boot).toEqual({ kind: 'disk', image: '/i.img' });
  });
});

describe('keys', () => {
  it('maps combos and text to qcodes', () => {
    expect(comboToQcodes('ctrl-alt-delete')).toEqual(['ctrl', 'alt', 'delete']);
    expect(comboToQcodes('enter')).toEqual(['ret']);
    expect(textToCombos('aB >\n')).toEqual([['a'], ['shift', 'b'], ['spc'], ['shift', 'dot'], ['ret']]);
    expect(() => textToCombos('é')).toThrow(/cannot type/);
  });
});
