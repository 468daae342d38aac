// x86_64 PC with SeaBIOS: GRUB (i386-pc) in the MBR and its gap, /boot with the NixOS GRUB menu ("NixOS - Default").
import { extendProfile } from '../harness/qemu/profile.ts';
import direct from './x86_64-direct.ts';

export default extendProfile(direct, {
  name: 'x86_64-bios',
  description: 'x86_64 q35 with SeaBIOS, GRUB i386-pc on an MBR virtio disk; root shell on hvc0, login on ttyS0',
  firmware: { kind: 'bios' },
  boot: { kind: 'testbed-disk', image: 'x86_64', layout: 'grub-bios', append: 'console=ttyS0 panic=-1' },
});
