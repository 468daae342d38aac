// x86_64 PC with OVMF (64-bit UEFI) and systemd-boot on an ESP, laid out like NixOS (loader/entries/nixos-generation-1.conf).
// Each machine gets its own copy of the EFI variable store: it persists across that machine's reboots, fresh per run.
import { extendProfile } from '../harness/qemu/profile.ts';
import direct from './x86_64-direct.ts';

export default extendProfile(direct, {
  name: 'x86_64-uefi',
  description: 'x86_64 q35 with OVMF, systemd-boot on a GPT virtio disk; root shell on hvc0, login on ttyS0',
  firmware: { kind: 'uefi', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd', package: 'ovmf' },
  boot: { kind: 'testbed-disk', image: 'x86_64', layout: 'systemd-boot', append: 'console=ttyS0 panic=-1' },
});
