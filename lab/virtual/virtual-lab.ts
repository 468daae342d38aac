// TEST DOUBLE — a virtual lab: boards that are QEMU VMs behind the real protocols fleetlab's lab drivers speak, for
// the test suite and lab/example-virtual.ts, because no Pi, power relay or SD mux can be had here. fleetlab's
// production code (lab/board.ts, lab/drivers/*) knows nothing of it: it opens the board's serial pseudo-terminal
// with `serialport`, switches power over HTTP and flips the SD mux with a usbsdmux command, as it would in a lab.
//
// Per board, in `dir`:
//   <board>.tty      the serial line: a pseudo-terminal (socat PTY) that lives as long as the lab, whatever the
//                    board's power does, as a USB serial adapter does; the VM's PL011 connects to it when powered.
//   http://127.0.0.1:<port>  the board's smart plug, speaking Tasmota (/cm?cmnd=Power%20On), Shelly Gen1
//                    (/relay/0?turn=on) and Shelly Gen2 RPC (/rpc/Switch.Set?id=0&on=true) alike. On: QEMU starts
//                    (aarch64 virt, U-Boot as firmware, the SD card as its disk). Off: QEMU is killed (the plug pulled).
//                    /fleetlab-vlab/freeze stops the VM where it is (SIGSTOP): a board that hangs, its line silent.
//   <board>.sg       the SD mux's control device, for lab/virtual/usbsdmux.mjs (the usbsdmux CLI's stand-in), which
//                    switches through http://127.0.0.1:<port>/fleetlab-vlab/mux.
//   <board>.sd.img   the SD card (512 MiB, whatever image it starts with): the VM's disk in "dut" mode; the block device fleetlab writes in "host" mode
//                    (switching to host while the board runs pulls the card from under it: the VM stops).
// The cards start with the aarch64 testbed's extlinux disk (NixOS sd-image layout). Everything it starts is a
// supervised child of the process that started it.
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import { spawnSupervised, type SupervisedProcess } from '../../harness/process/supervisor.ts';
import { makeOwnedDirSync } from '../../harness/process/temp-dirs.ts';
import { pollUntil, Deadline } from '../../harness/time/deadline.ts';

/** Every virtual board's SD card: 512 MiB. */
const CARD_BYTES = 512 * 1024 * 1024;

export interface VirtualBoardSpec {
  name: string;
  /** The plug's HTTP port on 127.0.0.1. */
  port: number;
  /** A 127.0.0.1 port forwarded to the board's SSH server: its "network address" (QEMU user networking, restricted). */
  sshPort?: number;
}

export interface VirtualLabOptions {
  dir: string;
  boards: VirtualBoardSpec[];
  /** The SD card image every board starts with (raw or qcow2). */
  cardImage: () => Promise<string>;
  log?: (line: string) => void;
}

type MuxMode = 'dut' | 'host' | 'off';

class VirtualBoard {
  readonly tty: string;
  readonly sock: string;
  readonly card: string;
  on = false;
  mux: MuxMode = 'dut';
  qemu: SupervisedProcess | undefined;
  socat: SupervisedProcess | undefined;
  server: Server | undefined;
  readonly spec: VirtualBoardSpec;
  private readonly dir: string;
  private readonly log: (line: string) => void;

  constructor(spec: VirtualBoardSpec, dir: string, log: (line: string) => void) {
    this.spec = spec;
    this.dir = dir;
    this.log = log;
    this.tty = join(dir, `${spec.name}.tty`);
    this.sock = join(dir, `${spec.name}.serial.sock`);
    this.card = join(dir, `${spec.name}.sd.img`);
  }

  /** The board's NIC: a fixed MAC, configured by the testbed from fw_cfg as a DHCP lease would be. */
  get mac(): string {
    const n = createHash('sha256').update(this.spec.name).digest();
    return `52:54:00:${[n[0], n[1], n[2]].map((b) => b!.toString(16).padStart(2, '0')).join(':')}`;
  }

  get netConf(): string {
    return join(this.dir, `${this.spec.name}.net`);
  }

  async open(cardImage: () => Promise<string>): Promise<void> {
    if (this.spec.sshPort) await writeFile(this.netConf, `${this.mac} 10.0.2.15/24\n`);
    if (!existsSync(this.card)) {
      await execa('qemu-img', ['convert', '-O', 'raw', await cardImage(), this.card]);
      // A card is bigger than the image on it: room for an SD image's first boot to grow into.
      if ((await stat(this.card)).size < CARD_BYTES) await truncate(this.card, CARD_BYTES);
    }
    await writeFile(join(this.dir, `${this.spec.name}.sg`), `virtual SD mux of ${this.spec.name}: lab/virtual/usbsdmux.mjs switches it\n`);
    // The parent socat holds the pseudo-terminal for the lab's life; each QEMU connection is served by a child. The
    // board's device name is our own link to it: socat's link= option would be removed by the first child that exits
    // (a power-off), and the line must outlive power cycles as a USB serial adapter does. Every child reads the one
    // pseudo-terminal: `-t 0` ends a powered-off board's child as soon as its QEMU's end closes. With socat's default
    // (0.5 s more, still reading) it took what was typed to the board powered on again within that time and wrote it
    // to the closed socket: 17 of 20 lines typed 0.25 s after a power cycle were lost (0 with -t 0); a U-Boot command
    // typed right after interrupting autoboot vanished so (lab/boot-loader-recovery.test.ts, 2026-12-08).
    let pts: string | undefined;
    this.socat = spawnSupervised('socat', 'socat', ['-d', '-d', '-t', '0', 'PTY,rawer', `UNIX-LISTEN:${this.sock},fork`], {
      onLine: (_stream, line) => {
        const m = / PTY is (\/dev\/pts\/\d+)/.exec(line);
        if (m) pts ??= m[1];
      },
    });
    const ready = await pollUntil(() => (pts && existsSync(this.sock) ? true : undefined), { deadline: Deadline.after(10_000, `socat for ${this.spec.name}`, { unscaled: true }), intervalMs: 20 });
    if (ready.timedOut || !pts) throw new Error(`virtual lab: socat made no pseudo-terminal for ${this.spec.name}: ${this.socat.stderrTail()}`);
    await symlink(pts, this.tty);
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      void this.handle(url).then(
        (body) => {
          res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body ?? { error: `no such endpoint: ${url.pathname}` }));
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: err.message }));
        },
      );
    });
    await new Promise<void>((ok, fail) => this.server!.once('error', fail).listen(this.spec.port, '127.0.0.1', () => ok()));
  }

  /** One request to the plug or the mux; undefined is a 404. */
  private async handle(url: URL): Promise<unknown> {
    const q = url.searchParams;
    if (url.pathname === '/cm') {
      // Tasmota: cmnd=Power, Power1, "Power On", "Power1 off", "Power Toggle".
      // A plug with one relay: Power and Power1 name it; another number is a command it does not know.
      const m = /^power(1?)\s*(on|off|toggle|1|0)?$/i.exec((q.get('cmnd') ?? '').trim());
      if (!m) return { Command: 'Unknown' };
      const key = `POWER${m[1] ?? ''}`;
      const want = m[2]?.toLowerCase();
      if (want) await this.power(want === 'toggle' ? !this.on : want === 'on' || want === '1');
      return { [key]: this.on ? 'ON' : 'OFF' };
    }
    if (url.pathname === '/relay/0') {
      const turn = q.get('turn');
      if (turn) await this.power(turn === 'toggle' ? !this.on : turn === 'on');
      return { ison: this.on, has_timer: false, overpower: false };
    }
    if (url.pathname === '/rpc/Switch.Set') {
      const was = this.on;
      await this.power(q.get('on') === 'true');
      return { was_on: was };
    }
    if (url.pathname === '/rpc/Switch.GetStatus') return { id: Number(q.get('id') ?? 0), source: 'http', output: this.on };
    if (url.pathname === '/fleetlab-vlab/freeze') {
      // A board that hangs (a hard lockup): its CPU stops, the serial line stays open and goes silent.
      if (!this.qemu?.running) return { frozen: false };
      this.qemu.signal('SIGSTOP');
      this.log(`virtual lab: ${this.spec.name} frozen`);
      return { frozen: true };
    }
    if (url.pathname === '/fleetlab-vlab/mux') {
      const mode = q.get('mode') as MuxMode | null;
      if (mode) await this.switchMux(mode);
      return { mode: this.mux };
    }
    return undefined;
  }

  private async power(on: boolean): Promise<void> {
    if (on === this.on) return;
    this.on = on;
    this.log(`virtual lab: ${this.spec.name} power ${on ? 'on' : 'off'}`);
    if (on) this.startVm();
    else await this.stopVm();
  }

  private async switchMux(mode: MuxMode): Promise<void> {
    if (!['dut', 'host', 'off'].includes(mode)) throw new Error(`mux mode ${mode}: dut, host or off`);
    if (mode !== 'dut' && this.qemu) await this.stopVm(); // the card pulled from a running board
    this.mux = mode;
    this.log(`virtual lab: ${this.spec.name} SD mux ${mode}`);
  }

  private startVm(): void {
    const args = [
      '-name', `${this.spec.name},process=fleetlab-vboard-${this.spec.name}`,
      '-machine', 'virt', '-cpu', 'cortex-a57', '-accel', 'tcg', '-m', '256', '-smp', '1',
      '-nodefaults', '-no-user-config', '-display', 'none',
      '-bios', '/usr/lib/u-boot/qemu_arm64/u-boot.bin',
      '-chardev', `socket,id=ser0,path=${this.sock}`, '-serial', 'chardev:ser0',
      '-device', 'virtio-rng-pci',
      ...(this.spec.sshPort
        ? ['-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${this.spec.sshPort}-:22`, '-device', `virtio-net-pci,netdev=n0,mac=${this.mac}`, '-fw_cfg', `name=opt/fleetlab/net,file=${this.netConf}`]
        : []),
      ...(this.mux === 'dut' ? ['-drive', `if=none,id=sd,file=${this.card},format=raw`, '-device', 'virtio-blk-pci,drive=sd'] : []),
    ];
    this.qemu = spawnSupervised(`vboard-${this.spec.name}`, 'qemu-system-aarch64', args);
    const proc = this.qemu;
    void proc.exited.then((e) => {
      if (this.qemu === proc && this.on) this.log(`virtual lab: ${this.spec.name}'s VM ended (${e.signal ?? e.exitCode}): ${proc.stderrTail().trim().slice(-300)}`);
    });
  }

  private async stopVm(): Promise<void> {
    const proc = this.qemu;
    this.qemu = undefined;
    if (proc?.running) await proc.stop(0).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.stopVm();
    await new Promise<void>((done) => (this.server ? this.server.close(() => done()) : done()));
    await this.socat?.stop(0).catch(() => undefined);
  }
}

export interface VirtualLab {
  dir: string;
  boards: Map<string, VirtualBoard>;
  close(): Promise<void>;
}

const running = new Map<string, Promise<VirtualLab>>();

/** Starts the virtual lab in `dir` (once per process and directory). */
export function startVirtualLab(opts: VirtualLabOptions): Promise<VirtualLab> {
  let lab = running.get(opts.dir);
  if (!lab) {
    lab = open(opts);
    running.set(opts.dir, lab);
    lab.catch(() => running.delete(opts.dir));
  }
  return lab;
}

async function open(opts: VirtualLabOptions): Promise<VirtualLab> {
  // Owner-stamped: the cards (a few hundred MB) go with the process, and a later fleetlab sweeps them after a SIGKILL.
  makeOwnedDirSync(opts.dir);
  process.once('exit', () => rmSync(opts.dir, { recursive: true, force: true }));
  const log = opts.log ?? (() => undefined);
  const boards = new Map<string, VirtualBoard>();
  for (const spec of opts.boards) {
    const b = new VirtualBoard(spec, opts.dir, log);
    await b.open(opts.cardImage);
    boards.set(spec.name, b);
  }
  await writeFile(join(opts.dir, 'vlab.json'), JSON.stringify({ pid: process.pid, boards: Object.fromEntries(opts.boards.map((b) => [b.name, { plug: `http://127.0.0.1:${b.port}` }])) }, null, 2));
  return {
    dir: opts.dir,
    boards,
    close: async () => {
      await Promise.all([...boards.values()].map((b) => b.close()));
      running.delete(opts.dir);
      await rm(opts.dir, { recursive: true, force: true });
    },
  };
}

/**
 * The card the virtual boards start with: the aarch64 testbed's extlinux disk (built and cached like any profile's);
 * another `append` makes another card (tests flash one to tell it from the first).
 */
export async function testbedCard(append = 'console=ttyAMA0 panic=-1'): Promise<string> {
  await import('../../machines/testbed/register.ts');
  const { ensureTestbed } = await import('../../machines/testbed/build.ts');
  const { ensureBootDisk } = await import('../../machines/testbed/boot-disk.ts');
  const { testbedRecipes } = await import('../../machines/testbed/index.ts');
  const image = await ensureTestbed(testbedRecipes.aarch64!);
  return (await ensureBootDisk(image, 'extlinux', append)).path;
}

/** root's private key for the testbed's SSH server (made per cache build; the cards carry its public half). */
export async function testbedSshKey(): Promise<string> {
  await import('../../machines/testbed/register.ts');
  const { ensureTestbed } = await import('../../machines/testbed/build.ts');
  const { testbedRecipes } = await import('../../machines/testbed/index.ts');
  const key = (await ensureTestbed(testbedRecipes.aarch64!)).ssh?.privateKey;
  if (!key) throw new Error('the aarch64 testbed has no SSH server');
  return key;
}
