import { defineProfile } from 'fleetlab';
export default defineProfile({
  name: 'x86_64-direct',
  arch: 'x86_64',
  qemu: { binary: 'qemu-system-x86_64', machine: 'q35', memoryMiB: 256, smp: 1 },
  accel: 'auto',
  firmware: { kind: 'bios' },
  boot: { kind: 'testbed', image: 'x86_64', append: 'console=ttyS0 panic=-1' },
  consoles: [{ name: 'serial0', device: 'serial' }, { name: 'hvc0', device: 'virtconsole' }],
  serialConsole: 'serial0',                 // kernel messages and the login prompt
  guest: { shell: { kind: 'backdoor', console: 'hvc0' }, login: { user: 'root', password: 'fleetlab' } },
});
