// An example lab: two virtual boards, vboard-1 and vboard-2 (tag "virtual"), Pi-like: a serial line with a login,
// a Tasmota smart plug, an SD mux. They are the test suite's stand-in lab (lab/virtual/virtual-lab.ts: QEMU VMs
// behind a real pseudo-terminal, a real HTTP plug and a usbsdmux-compatible command), started in the process that
// uses the lab by `provision`. A real lab file looks the same without `provision`: see docs/lab.md's example of a
// Raspberry Pi 4 on a Shelly plug with a USB-SD-Mux.
//   ./fleetlab run scenarios/smoke.ts --lab lab/example-virtual.ts --machine tag:virtual
//   ./fleetlab lab status --lab lab/example-virtual.ts --json
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFile } from 'node:fs/promises';
import { defineLab } from './inventory.ts';

/** Each process that uses this lab gets its own virtual boards; their device paths are fixed when this file loads. */
const dir = process.env.FLEETLAB_VLAB_DIR ?? join(tmpdir(), `fleetlab-vlab-${process.pid}`);
/** Four ports per process: the plugs at +1 and +2, the boards' SSH at +3 and +4. */
const basePort = Number(process.env.FLEETLAB_VLAB_PORT ?? 20_000 + (process.pid % 9000) * 4);

const board = (n: number) => ({
  profile: './virtual/vboard-profile.ts',
  description: `virtual Pi-like board ${n} (QEMU aarch64 behind a pty, a Tasmota plug and an SD mux)`,
  tags: ['virtual', 'aarch64'],
  serial: { device: join(dir, `vboard-${n}.tty`), baud: 115200 },
  power: { driver: 'tasmota' as const, url: `http://127.0.0.1:${basePort + n}`, offDelayMs: 200 },
  sdMux: { driver: 'usbsdmux' as const, control: join(dir, `vboard-${n}.sg`), device: join(dir, `vboard-${n}.sd.img`), command: join(import.meta.dirname, 'virtual/usbsdmux.mjs') },
  // Its SSH server, as a board on the lab network would have one: a 127.0.0.1 port forwarded to the VM's port 22.
  network: { address: '127.0.0.1', sshPort: basePort + 2 + n, user: 'root', privateKey: join(dir, 'ssh-key') },
  login: { user: 'root', password: 'fleetlab' },
});

export default defineLab({
  name: 'example-virtual',
  // A runner killed with SIGKILL loses its boards this long after its last renewal (FLEETLAB_VLAB_TTL: tests make it short).
  leaseTtlSeconds: Number(process.env.FLEETLAB_VLAB_TTL ?? 30),
  boards: { 'vboard-1': board(1), 'vboard-2': board(2) },
  async provision() {
    const { startVirtualLab, testbedCard, testbedSshKey } = await import('./virtual/virtual-lab.ts');
    const lab = await startVirtualLab({ dir, boards: [1, 2].map((n) => ({ name: `vboard-${n}`, port: basePort + n, sshPort: basePort + 2 + n })), cardImage: () => testbedCard() });
    await copyFile(await testbedSshKey(), join(dir, 'ssh-key'));
    return () => lab.close();
  },
});
