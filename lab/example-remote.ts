// An example lab that spans hosts: two virtual boards, rboard-1 and rboard-2 (tag "remote"), hanging off a lab host
// "shelf1" that fleetlab reaches over SSH: their serial lines exported by ser2net as RFC 2217 ports, their power
// switched by commands run on shelf1 (here busybox wget against the boards' plugs, as a shelf would run usbrelay or
// gpioset), their SD muxes switched and their cards written on shelf1. In the test suite shelf1 is this machine (lab/virtual/remote-host.ts: Debian's sshd on a loopback port
// with a user of its own, and Debian's ser2net), started by `provision` with the boards (lab/virtual/virtual-lab.ts).
// A real lab file looks the same without `provision`, with shelf1's address and its pinned hostKey.
//   ./fleetlab run scenarios/smoke.ts --lab lab/example-remote.ts --machine tag:remote
//   ./fleetlab lab health --lab lab/example-remote.ts
import { copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineLab } from './inventory.ts';

/** Each process that uses this lab gets its own host and boards; their paths and ports are fixed when this file loads. */
const dir = process.env.FLEETLAB_RLAB_DIR ?? join(tmpdir(), `fleetlab-rlab-${process.pid}`);
/** Ten ports per process: plugs at +1 and +2, the boards' SSH at +3 and +4, shelf1's sshd at +5, ser2net at +6 and +7. */
const basePort = Number(process.env.FLEETLAB_RLAB_PORT ?? 30_000 + (process.pid % 3000) * 10);
/** Boards whose plug is made not to answer (FLEETLAB_RLAB_BREAK=rboard-2): a health check then fails, for tests and demos. */
const broken = (process.env.FLEETLAB_RLAB_BREAK ?? '').split(',');
const plug = (n: number, cmnd: string) => `busybox wget -q -O - 'http://127.0.0.1:${broken.includes(`rboard-${n}`) ? basePort + 9 : basePort + n}/cm?cmnd=${cmnd}'`;

const board = (n: number) => ({
  profile: './virtual/vboard-profile.ts',
  description: `virtual Pi-like board ${n} on shelf1: serial through ser2net (RFC 2217), power by a command on shelf1`,
  tags: ['remote', 'aarch64'],
  host: 'shelf1',
  serial: { rfc2217: `127.0.0.1:${basePort + 5 + n}`, baud: 115200 },
  power: { driver: 'command' as const, on: plug(n, 'Power%20On'), off: plug(n, 'Power%20Off'), status: `${plug(n, 'Power')} | grep -q '"ON"'`, offDelayMs: 200 },
  // The mux's command and the card's device are on shelf1: switched and written there over SSH.
  sdMux: { driver: 'usbsdmux' as const, control: join(dir, `rboard-${n}.sg`), device: join(dir, `rboard-${n}.sd.img`), command: join(import.meta.dirname, 'virtual/usbsdmux.mjs') },
  network: { address: '127.0.0.1', sshPort: basePort + 2 + n, user: 'root', privateKey: join(dir, 'ssh-key') },
  login: { user: 'root', password: 'fleetlab' },
  // The known-good card lab health flashes first, when given (the tests give the testbed's card).
  ...(process.env.FLEETLAB_RLAB_HEALTH_IMAGE ? { healthImage: process.env.FLEETLAB_RLAB_HEALTH_IMAGE } : {}),
});

export default defineLab({
  name: 'example-remote',
  leaseTtlSeconds: Number(process.env.FLEETLAB_RLAB_TTL ?? 30),
  hosts: {
    // No hostKey here: the stand-in's key is made by provision. A real lab pins it: hostKey: 'ssh-ed25519 AAAA…'.
    shelf1: { ssh: `${process.getuid?.() === 0 ? 'fleetlab-lab' : (process.env.USER ?? 'root')}@127.0.0.1`, port: basePort + 5, privateKey: join(dir, 'host', 'lab-key') },
  },
  boards: { 'rboard-1': board(1), 'rboard-2': board(2) },
  async provision() {
    const { startVirtualLab, testbedCard, testbedSshKey } = await import('./virtual/virtual-lab.ts');
    const { startRemoteHost } = await import('./virtual/remote-host.ts');
    const boards = [1, 2].map((n) => ({ name: `rboard-${n}`, port: basePort + n, sshPort: basePort + 2 + n }));
    const lab = await startVirtualLab({ dir, boards, cardImage: () => testbedCard() });
    await copyFile(await testbedSshKey(), join(dir, 'ssh-key'));
    const shared = [dir, join(dir, 'vlab.json'), ...boards.flatMap((b) => [join(dir, `${b.name}.sd.img`), join(dir, `${b.name}.sg`)])];
    const host = await startRemoteHost({ dir: join(dir, 'host'), sshPort: basePort + 5, exports: boards.map((b, i) => ({ device: join(dir, `${b.name}.tty`), port: basePort + 6 + i })), share: shared }).catch(async (err: unknown) => {
      await lab.close();
      throw err;
    });
    return async () => {
      await host.close();
      await lab.close();
    };
  },
});
