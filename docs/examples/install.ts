import { scenario, testbed } from 'fleetlab';

export const isoInstall = scenario({
  name: 'ISO install',
  machines: { pc: { profile: 'x86_64-uefi', memoryMiB: 1024 } },   // memoryMiB overrides the profile's
  start: 'manual',
  async run({ machines: { pc }, install }) {
    const { iso, system } = await testbed.installerIso(pc);        // or your NixOS ISO and toplevel / flake
    const r = await install.fromIso(pc, { iso, system, target: { disk: '4G' }, expect: { bootloader: 'systemd-boot' } });
    r.booted.generation;                                            // 1; r.root '/dev/vda2', r.firmware 'uefi-64'
  },
});

export const sdCard = scenario({
  name: 'SD image',
  machines: { pi: 'raspi3b' },
  start: 'manual',
  async run({ machines: { pi }, install }) {
    const { image } = await testbed.sdImage(pi);                    // or your flake's sd-image (unpacked .img)
    await install.sdImage(pi, { image, card: '1G' });               // root grown to the card, extlinux, generation 1
  },
});
