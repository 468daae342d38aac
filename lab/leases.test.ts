// Leases, reservations and quarantine against real databases (SQLite through node:sqlite, and a PostgreSQL started
// from Debian's package), racing processes, runners killed with SIGKILL and SIGTERM, `fleetlab lab status --json`, a
// board that fails to come up, the power drivers against the virtual lab's plug, and the image writer with a bmap.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type TestPostgres } from '../harness/testing/postgres.ts';
import { processesMatching } from '../harness/testing/processes.ts';
import { writeImage } from './drivers/image-writer.ts';
import { powerDriver } from './drivers/power.ts';
import { sdMux } from './drivers/sd-mux.ts';
import { openLeaseStore, SqliteLeases } from './leases.ts';
import { startVirtualLab, type VirtualLab } from './virtual/virtual-lab.ts';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'harness/cli/main.ts');
const LAB = 'lab/example-virtual.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetlab-leases-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fleetlab = (args: string[], env: Record<string, string> = {}) => execa(process.execPath, [cli, ...args], { cwd: root, reject: false, timeout: 300_000, env: { CI: 'true', NO_COLOR: '1', ...env } });
const status = async (db: string, lab = LAB) => {
  const r = await fleetlab(['lab', 'status', '--lab', lab, '--lab-db', db, '--json']);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout).boards as Array<Record<string, string>>;
};

describe('fleetlab lab status --json', () => {
  it('prints every board: free, leased (owner, expiry), reserved (holder, end), quarantined (reason)', async () => {
    const db = join(dir, 'status.sqlite');
    const store = new SqliteLeases(db);
    const lease = await store.acquire(['vboard-1'], 'ci-runner-7', 30_000);
    expect(lease?.board).toBe('vboard-1');
    await store.reserve('vboard-2', 'alice', Date.now() + 3600_000, 'bug 42');
    let boards = await status(db);
    expect(boards.map((b) => b.board)).toEqual(['vboard-1', 'vboard-2']);
    expect(boards[0]).toMatchObject({ state: 'leased', owner: 'ci-runner-7' });
    expect(Date.parse(boards[0]!.expiresAt!)).toBeGreaterThan(Date.now());
    expect(boards[1]).toMatchObject({ state: 'reserved', holder: 'alice', reason: 'bug 42' });
    await store.release('vboard-1', 'ci-runner-7');
    await store.quarantine('vboard-1', 'no console');
    await store.unreserve('vboard-2');
    boards = await status(db);
    expect(boards[0]).toMatchObject({ state: 'quarantined', reason: 'no console' });
    expect(boards[1]).toMatchObject({ state: 'free' });
    await store.close();
  });
});

describe('a runner that dies', () => {
  const hold = async (signal: 'SIGKILL' | 'SIGTERM', db: string) => {
    const ttl = 8;
    const env = { CI: 'true', NO_COLOR: '1', FLEETLAB_VLAB_TTL: String(ttl), FLEETLAB_TEST_TAG: `lease-${signal}-${process.pid}` };
    const run = execa(process.execPath, [cli, 'run', 'lab/fixtures/board-scenarios.ts', '--grep', '^holds', '--lab', LAB, '--lab-db', db, '--output', join(dir, `out-${signal}`)], { cwd: root, reject: false, timeout: 120_000, env });
    let out = '';
    await new Promise<void>((ok, fail) => {
      run.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('holding the board')) ok();
      });
      void run.then((r) => fail(new Error(`the runner ended before it held its board: ${r.stdout}${r.stderr}`)));
    });
    expect((await status(db))[0]).toMatchObject({ state: 'leased' });
    expect((await status(db))[0]!.owner).toContain(`:${run.pid}:`);
    run.kill(signal);
    const killed = Date.now();
    await run;
    let boards = await status(db);
    while (boards[0]!.state !== 'free' && Date.now() - killed < (ttl + 10) * 1000) {
      await new Promise((r) => setTimeout(r, 250));
      boards = await status(db);
    }
    // Nothing of the virtual lab outlives its runner either: its QEMUs and socats die with it.
    expect(processesMatching('socat', { environ: `FLEETLAB_TEST_TAG=${env.FLEETLAB_TEST_TAG}` })).toEqual([]);
    return { freeAfterMs: Date.now() - killed, state: boards[0]!.state, ttl };
  };

  it('killed with SIGKILL: its board is free again within the lease TTL plus 5 s', async () => {
    const r = await hold('SIGKILL', join(dir, 'kill.sqlite'));
    expect(r.state).toBe('free');
    expect(r.freeAfterMs).toBeLessThanOrEqual((r.ttl + 5) * 1000);
  }, 180_000);

  it('stopped with SIGTERM: its board is released at once', async () => {
    const r = await hold('SIGTERM', join(dir, 'term.sqlite'));
    expect(r.state).toBe('free');
    expect(r.freeAfterMs).toBeLessThan(r.ttl * 1000);
  }, 180_000);
});

describe('fleetlab lab console', () => {
  it('attaches a terminal to the serial line, holding the lease, and Ctrl-] detaches and releases', async () => {
    const db = join(dir, 'console.sqlite');
    const session = `fleetlab-labcon-${process.pid}`;
    const done = join(dir, 'console-done');
    const tmux = (...args: string[]) => execa('tmux', args, { reject: false, timeout: 10_000 });
    await tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '20', `cd ${root} && ${process.execPath} ${cli} lab console vboard-1 --lab ${LAB} --lab-db ${db}; touch ${done}; sleep 30`);
    try {
      const until = Date.now() + 60_000;
      let screen = '';
      while (Date.now() < until && !/attached to vboard-1's serial line/.test(screen)) {
        await new Promise((r) => setTimeout(r, 250));
        screen = (await tmux('capture-pane', '-p', '-t', session)).stdout;
      }
      expect(screen).toMatch(/attached to vboard-1's serial line \S+vboard-1\.tty \(Ctrl-\] to detach\)/);
      expect((await status(db))[0]).toMatchObject({ state: 'leased' });
      await tmux('send-keys', '-t', session, 'C-]');
      const gone = Date.now() + 20_000;
      while (Date.now() < gone && (await execa('test', ['-e', done], { reject: false })).exitCode !== 0) await new Promise((r) => setTimeout(r, 250));
      expect((await status(db))[0]).toMatchObject({ state: 'free' });
    } finally {
      await tmux('kill-session', '-t', session);
    }
  }, 120_000);
});

describe('racing acquisitions: no board is leased twice', () => {
  let pg: TestPostgres | undefined;
  afterAll(async () => {
    await pg?.stop();
  });

  const race = async (spec: string) => {
    const boards = ['b1', 'b2', 'b3'];
    const racers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => execa(process.execPath, ['lab/fixtures/race.ts', spec, `racer-${i}`, ...boards], { cwd: root, reject: false, timeout: 60_000 })),
    );
    for (const r of racers) expect(r.exitCode, r.stderr).toBe(0);
    const got = racers.map((r) => JSON.parse(r.stdout) as { owner: string; board: string | null }).filter((g) => g.board);
    expect(got.map((g) => g.board).sort()).toEqual(boards);
  };

  it('SQLite (node:sqlite), 10 processes, 3 boards', async () => {
    await race(join(dir, 'race.sqlite'));
  }, 120_000);

  it('PostgreSQL (a real server from Debian\'s package), 10 processes, 3 boards', async () => {
    pg = await startPostgres();
    await race(pg.url);
  }, 180_000);

  it('both stores keep each board\'s last health check', async () => {
    for (const spec of [join(dir, 'health.sqlite'), pg!.url]) {
      const store = await openLeaseStore(spec);
      try {
        expect(await store.health('b1')).toBeUndefined();
        await store.recordHealth('b1', { ok: false, detail: 'serial: nothing came over tcp:shelf1:4001', log: '/tmp/b1.log' });
        await store.recordHealth('b1', { ok: true, detail: 'power off, power on, serial alive, shell answers, aarch64 in 20.1 s' });
        const h = await store.health('b1');
        expect(h).toMatchObject({ ok: true, detail: 'power off, power on, serial alive, shell answers, aarch64 in 20.1 s' });
        expect(h!.log).toBeUndefined();
        expect(Math.abs(Date.parse(h!.at) - Date.now())).toBeLessThan(60_000);
      } finally {
        await store.close();
      }
    }
  }, 60_000);
});

describe('health', () => {
  it('a board that cannot come up is quarantined: its case is an infrastructure error, the next run skips it', async () => {
    const db = join(dir, 'broken.sqlite');
    const lab = 'lab/fixtures/broken-lab.ts';
    const first = await fleetlab(['run', 'scenarios/smoke.ts', '--lab', lab, '--lab-db', db, '--machine', 'tag:dead', '--output', join(dir, 'broken-1')]);
    expect(first.exitCode, first.stdout + first.stderr).toBe(3);
    expect(first.stdout).toMatch(/✗ error scenarios\/smoke\.ts::smoke\[tag:dead\]/);
    const [board] = await status(db, lab);
    expect(board).toMatchObject({ board: 'dead-1', state: 'quarantined' });
    expect(board!.reason).toMatch(/did not come up for scenarios\/smoke\.ts::smoke\[tag:dead\]: .*127\.0\.0\.1:9/);
    const second = await fleetlab(['run', 'scenarios/smoke.ts', '--lab', lab, '--lab-db', db, '--machine', 'tag:dead', '--output', join(dir, 'broken-2')]);
    expect(second.exitCode, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toMatch(/- skipped .*\n\s+no board of dead-1 is available: dead-1 quarantined \(did not come up/);
  }, 120_000);

  it('bad lab input is a configuration error naming the file and field, before anything boots', async () => {
    const bad = join(dir, 'bad-lab.ts');
    await writeFile(bad, `export default { name: 'bad', boards: { b1: { profile: 'x86_64-direct', serial: { device: '/dev/ttyUSB0' }, power: { driver: 'tasmota', url: 'not a url' } } } };\n`);
    const r = await fleetlab(['lab', 'status', '--lab', bad, '--lab-db', join(dir, 'bad.sqlite')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/lab file .*bad-lab\.ts is invalid:\n\s+- boards\.b1\.power\.url/);
    const noLab = await fleetlab(['run', 'scenarios/smoke.ts', '--machine', 'tag:virtual']);
    expect(noLab.exitCode).toBe(2);
    expect(noLab.stderr).toMatch(/a lab board: give the lab with --lab <lab file>/);
  });
});

describe('power drivers against the virtual lab\'s plug', () => {
  let lab: VirtualLab;
  afterAll(async () => {
    await lab?.close();
  });

  it('Tasmota, Shelly Gen1 and Shelly Gen2 switch the same plug; a command driver reads its status', async () => {
    const card = join(dir, 'tiny-card.img');
    await writeFile(card, Buffer.alloc(1024 * 1024));
    const port = 24_000 + (process.pid % 5000);
    lab = await startVirtualLab({ dir: join(tmpdir(), `fleetlab-vlab-drivers-${process.pid}`), boards: [{ name: 'p1', port }], cardImage: async () => card });
    const url = `http://127.0.0.1:${port}`;
    const drivers = [powerDriver({ driver: 'tasmota', url, offDelayMs: 0, onDelayMs: 0 }, 'p1'), powerDriver({ driver: 'shelly-gen1', url, relay: 0, offDelayMs: 0, onDelayMs: 0 }, 'p1'), powerDriver({ driver: 'shelly-gen2', url, id: 0, offDelayMs: 0, onDelayMs: 0 }, 'p1')];
    for (const d of drivers) {
      await d.set(true);
      for (const other of drivers) expect(await other.get(), `${other.describe} after ${d.describe} on`).toBe(true);
      await d.set(false);
      for (const other of drivers) expect(await other.get(), `${other.describe} after ${d.describe} off`).toBe(false);
    }
    await expect(powerDriver({ driver: 'tasmota', url, relay: 3, offDelayMs: 0, onDelayMs: 0 }, 'p1').get()).rejects.toThrow(/without "POWER3": wrong relay number/);
    await expect(powerDriver({ driver: 'tasmota', url: 'http://127.0.0.1:9', offDelayMs: 0, onDelayMs: 0 }, 'p1').set(true)).rejects.toThrow(/did not answer/);
    const flag = join(dir, 'relay-on');
    const cmd = powerDriver({ driver: 'command', on: `touch ${flag}`, off: `rm -f ${flag}`, status: `test -e ${flag}`, offDelayMs: 0, onDelayMs: 0 }, 'p1');
    await cmd.set(true);
    expect(await cmd.get()).toBe(true);
    await cmd.set(false);
    expect(await cmd.get()).toBe(false);
  }, 60_000);
});

describe('drivers that run commands (gpioset, usbrelay, sd-mux-ctrl stand-ins in lab/virtual/bin)', () => {
  it('switch with the command lines the real tools take; the manual driver needs a person at a terminal', async () => {
    const log = join(dir, 'standins.log');
    const saved = { PATH: process.env.PATH, LOG: process.env.FLEETLAB_STANDIN_LOG };
    process.env.PATH = `${join(root, 'lab/virtual/bin')}:${process.env.PATH}`;
    process.env.FLEETLAB_STANDIN_LOG = log;
    try {
      const gpio = powerDriver({ driver: 'gpio', chip: 'gpiochip0', line: 17, activeLow: true, offDelayMs: 0, onDelayMs: 0 }, 'g1');
      await gpio.set(true);
      await gpio.set(false);
      const relay = powerDriver({ driver: 'usbrelay', relay: 'HURTM_2', offDelayMs: 0, onDelayMs: 0 }, 'r1');
      await relay.set(true);
      const mux = sdMux({ driver: 'sd-mux-ctrl', serial: 'sd-wire_11', device: join(dir, 'card.dev') }, 's1');
      await mux.switch('host');
      await mux.switch('dut');
      await expect(mux.switch('off')).rejects.toThrow(/an SDWire has no "off"/);
      expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([
        'gpioset gpiochip0 17=0 mode=exit',
        'gpioset gpiochip0 17=1 mode=exit',
        'usbrelay HURTM_2=1',
        'sd-mux-ctrl sd-wire_11 ts',
        'sd-mux-ctrl sd-wire_11 dut',
      ]);
      // A tool that is not installed says which.
      process.env.PATH = '/nonexistent';
      await expect(relay.set(false)).rejects.toThrow(/usbrelay \(Debian package usbrelay\) is not installed/);
    } finally {
      process.env.PATH = saved.PATH;
      process.env.FLEETLAB_STANDIN_LOG = saved.LOG;
    }
    // The test runs without a terminal on stdin: a manual switch cannot be asked for.
    await expect(powerDriver({ driver: 'manual', offDelayMs: 0, onDelayMs: 0 }, 'm1').set(true)).rejects.toThrow(/manual switching needs a person at a terminal: Switch board m1 ON/);
  });
});

describe('image writer', () => {
  const block = 4096;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('with a bmap: writes only the mapped blocks, checks them, and reads them back', async () => {
    const image = Buffer.alloc(16 * block);
    for (const b of [0, 1, 5, 6, 7, 12]) image.fill(b + 1, b * block, (b + 1) * block);
    const img = join(dir, 'card.img');
    await writeFile(img, image);
    const range = (a: number, z: number) => `<Range chksum="${sha(image.subarray(a * block, (z + 1) * block))}">${a === z ? a : `${a}-${z}`}</Range>`;
    await writeFile(`${img}.bmap`, `<?xml version="1.0" ?>\n<bmap version="2.0">\n<ImageSize> ${image.length} </ImageSize>\n<BlockSize> ${block} </BlockSize>\n<BlocksCount> 16 </BlocksCount>\n<MappedBlocksCount> 6 </MappedBlocksCount>\n<ChecksumType> sha256 </ChecksumType>\n<BlockMap>\n${range(0, 1)}\n${range(5, 7)}\n${range(12, 12)}\n</BlockMap>\n</bmap>\n`);
    // A used card: what the bmap leaves out keeps its old bytes.
    const dev = join(dir, 'card.dev');
    await writeFile(dev, Buffer.alloc(16 * block, 0xaa));
    const r = await writeImage(img, dev);
    expect(r).toEqual({ bytesWritten: 6 * block, ranges: 3, bmap: true });
    const after = await readFile(dev);
    for (const b of [0, 1, 5, 6, 7, 12]) expect(after[b * block], `block ${b}`).toBe(b + 1);
    expect(after[3 * block]).toBe(0xaa);
    // A damaged image is caught by its bmap's checksums.
    image.fill(0x55, 6 * block, 6 * block + 10);
    await writeFile(img, image);
    await expect(writeImage(img, dev)).rejects.toThrow(/do not match their checksum/);
  });

  it('without a bmap: every block (zeros skipped only in a file it creates)', async () => {
    const image = Buffer.alloc(8 * block);
    image.fill(7, 2 * block, 3 * block);
    const img = join(dir, 'plain.img');
    await writeFile(img, image);
    const dev = join(dir, 'plain.dev');
    const r = await writeImage(img, dev);
    expect(r.bmap).toBe(false);
    expect(await readFile(dev)).toEqual(image);
  });
});
