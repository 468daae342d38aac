// x86_64 made to be many: a fleet's node (`machines: { node: { profile: 'x86_64-micro', count: 64 } }`). The testbed
// of x86_64-direct (same image, direct kernel boot on q35, shell on hvc0, login on ttyS0) without what a mesh node
// does not need, measured on a 16-node grid (docs/performance.md, "What a clone's memory holds"):
// - no display: std VGA's 16 MiB of video memory is written in every clone;
// - a 16 MiB TCG translation cache: QEMU's default (1 GiB) keeps every translation a clone ever made, ~30 MiB after
//   a restore and growing; 16 MiB held a meshed clone's PSS at 41 MiB and 16 nodes started in 27.8 s (21.5 s
//   uncapped), 8 MiB thrashed (103.3 s);
// - 160 MiB of RAM: 144 MiB is the least the testbed's ~27 MB initramfs unpacks in (128 MiB: "Initramfs unpacking
//   failed"), plus room for what a scenario runs.
// Not QEMU's microvm machine: under TCG it idled at twice q35's CPU.
import { extendProfile } from '../harness/qemu/profile.ts';
import direct from './x86_64-direct.ts';

export default extendProfile(direct, {
  name: 'x86_64-micro',
  description: 'x86_64 q35 made to be many (a fleet node): the x86_64-direct testbed in 160 MiB, no display, a 16 MiB TCG translation cache; root shell on hvc0, login on ttyS0',
  qemu: { memoryMiB: 160, tbSizeMiB: 16 },
  display: 'none',
});
