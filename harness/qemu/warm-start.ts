// Warm starts: a machine booted to its shell once is saved — QEMU's migration stream in a file, its disk overlays and
// EFI variable store copied beside it while the VM is stopped — and later machines of the same shape restore that
// instead of booting (`-incoming defer` + `migrate-incoming`). Snapshots live in one run's store, built once per key
// (the first machine that needs one boots and saves; the others wait for it), and are removed when the run ends
// unless --keep-snapshots names a directory to keep them in for the next run. The guest's RAM is a file of its own
// beside the stream when the machine saved ran on shared RAM (shared-ram.ts): restored machines map it copy-on-write,
// so clones of one snapshot share its pages and each holds only what it changes.
//
// Why migration and not savevm/-loadvm: savevm writes into the qcow2 disks and refuses when any writable drive is not
// qcow2, and a UEFI machine's variable store is a raw pflash file; a migration stream covers RAM and device state
// (pflash included) whatever the drives are. Both restore in about 0.3 s on this host (issue #15's measurements).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { LinkState } from '../net/fabric.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';

/** What a snapshot holds, by file. */
export interface SnapshotFiles {
  dir: string;
  /** QEMU's migration stream: device state, and RAM unless `ram` holds it. */
  state: string;
  /** The guest's RAM as a file, when the machine saved had it shared: restored machines map it copy-on-write. */
  ram?: string;
  /** Copies of the machine's disk overlays at the moment of the snapshot, in the machine's disk order. */
  disks: string[];
  /** Copy of the EFI variable store, for UEFI machines. */
  efiVars?: string;
  meta: SnapshotMeta;
}

export interface SnapshotMeta {
  key: string;
  profile: string;
  /** The machine and case that booted cold to make it, and its console log (kept in that run's report). */
  madeBy: string;
  bootLog: string;
  /** How long that cold boot to the shell took. */
  bootMs: number;
  createdAt: string;
  /** The parts the key was hashed from, for reading why two snapshots differ. */
  parts: unknown;
  /** The maker's NIC MACs in QEMU's device order: a restored machine's NICs are given its own in their place. */
  macs?: string[];
}

/** What capturing a stopped machine wrote, for its restore. */
export interface CapturedState {
  disks: number;
  efiVars: boolean;
  /** The RAM is a file of its own beside the stream (the machine's RAM was shared), not in it. */
  ram?: boolean;
  /** Its NICs' MACs in QEMU's device order. */
  macs: string[];
  /** Its boots so far. */
  boots: number;
}

/** A checkpoint's record: which scenario point, made by which case, the steps' value, and each machine's state. */
export interface CheckpointMeta {
  key: string;
  /** The checkpoint's name in its scenario. */
  name: string;
  scenario: string;
  file: string;
  /** The case (and its log folder) whose steps made it. */
  madeBy: string;
  createdAt: string;
  /** How long the steps took that the checkpoint stands for. */
  stepsMs: number;
  /** What the steps returned (JSON). */
  value: unknown;
  /** The parts the key was hashed from, for reading why two checkpoints differ. */
  parts: unknown;
  /** The fabric's link conditions at the checkpoint, by network. */
  fabric?: LinkState;
  roles: Record<string, CapturedState & { profile: string; log: string }>;
}

export interface CheckpointFiles {
  dir: string;
  meta: CheckpointMeta;
  /** Each role's machine as a snapshot to restore. */
  machines: Record<string, SnapshotFiles>;
}

type Claim<T> = { owner: true; done: (s: T | undefined) => void } | { owner: false; wait: Promise<T | undefined> };

/** The snapshots of one run: keyed by everything that shapes a machine, built once per key. */
export class SnapshotStore {
  readonly dir: string;
  /** Kept after the run (--keep-snapshots); else removed by close(). */
  readonly keep: boolean;
  private readonly building = new Map<string, Promise<unknown>>();
  /** Directory names (a key, or key~N after N discards of it) dropped in this run: removed at its end. */
  private readonly discarded = new Set<string>();
  /** Turn k is released once case k of the run decided how its machines start (see inTurn). */
  private readonly turns = new Map<number, { released: Promise<void>; release: () => void }>();

  private constructor(dir: string, keep: boolean) {
    this.dir = dir;
    this.keep = keep;
  }

  /** A store in a fresh temp dir (removed at the end of the run), or in `keepDir`, kept for later runs. */
  static async open(keepDir?: string): Promise<SnapshotStore> {
    if (keepDir) {
      const dir = resolve(keepDir);
      await mkdir(dir, { recursive: true });
      return new SnapshotStore(dir, true);
    }
    return new SnapshotStore(await makeTempDir('fleetlab-snapshots-'), false);
  }

  /**
   * The directory name `key`'s snapshot lives in: the key, or after a discarded one (whose files stay until the run
   * ends) the key's next generation, key~1, key~2, …; marks written by other processes count too.
   */
  private live(key: string): string {
    for (let g = 0; ; g++) {
      const name = g ? `${key}~${g}` : key;
      if (!this.discarded.has(name) && !existsSync(join(this.dir, name, 'discarded'))) return name;
    }
  }

  /** The complete snapshot for `key`, if one exists. */
  async find(key: string): Promise<SnapshotFiles | undefined> {
    const dir = join(this.dir, this.live(key));
    const meta = await readFile(join(dir, 'meta.json'), 'utf8').then((t) => JSON.parse(t) as SnapshotMeta & { disks: number; efiVars: boolean; ram?: boolean }, () => undefined);
    if (!meta) return undefined;
    return { dir, state: join(dir, 'state'), ram: meta.ram ? join(dir, 'ram') : undefined, disks: Array.from({ length: meta.disks }, (_, k) => join(dir, `disk${k}.qcow2`)), efiVars: meta.efiVars ? join(dir, 'efivars.fd') : undefined, meta };
  }

  /**
   * The first caller for `key` owns the build and must call done() with what it made (or undefined); later callers
   * get a promise of it. One build per key per run.
   */
  claim<T = SnapshotFiles>(key: string): Claim<T> {
    const pending = this.building.get(key) as Promise<T | undefined> | undefined;
    if (pending) return { owner: false, wait: pending };
    let done!: (s: T | undefined) => void;
    this.building.set(key, new Promise<T | undefined>((r) => (done = r)));
    return { owner: true, done };
  }

  /**
   * Runs `fn` (deciding how a case's machines start, which claims builds) once every earlier case of the run has
   * decided or ended: the first case in plan order is the one that boots and saves, whatever order the workers'
   * cases reach their start in.
   */
  async inTurn<T>(seq: number, fn: () => Promise<T>): Promise<T> {
    for (let k = 0; k < seq; k++) await this.turn(k).released;
    try {
      return await fn();
    } finally {
      this.release(seq);
    }
  }

  /** Case `seq` needs no turn (it ended, was skipped, or has decided): later cases stop waiting for it. */
  release(seq: number): void {
    this.turn(seq).release();
  }

  private turn(k: number): { released: Promise<void>; release: () => void } {
    let t = this.turns.get(k);
    if (!t) {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      t = { released, release };
      this.turns.set(k, t);
    }
    return t;
  }

  /** Writes a snapshot: `fill` puts the state and disks into a scratch dir, which then becomes the key's, whole. */
  async write(key: string, meta: Omit<SnapshotMeta, 'key'>, fill: (dir: string) => Promise<CapturedState>): Promise<SnapshotFiles> {
    await this.whole(key, async (tmp) => {
      const got = await fill(tmp);
      await writeFile(join(tmp, 'meta.json'), JSON.stringify({ ...meta, key, disks: got.disks, efiVars: got.efiVars, ram: got.ram }, null, 2));
    });
    return (await this.find(key))!;
  }

  /**
   * The complete checkpoint for `key`, if one exists: the state of each of a case's machines (by role) at a named
   * point of its scenario, and the value its steps returned.
   */
  async findCheckpoint(key: string): Promise<CheckpointFiles | undefined> {
    const dir = join(this.dir, this.live(key));
    const meta = await readFile(join(dir, 'meta.json'), 'utf8').then((t) => JSON.parse(t) as CheckpointMeta, () => undefined);
    if (!meta?.roles) return undefined;
    const machines = Object.fromEntries(
      Object.entries(meta.roles).map(([role, r]) => {
        const d = join(dir, role);
        const snapMeta: SnapshotMeta = { key: `${key}/${role}`, profile: r.profile, madeBy: meta.madeBy, bootLog: r.log, bootMs: meta.stepsMs, createdAt: meta.createdAt, parts: undefined, macs: r.macs };
        return [role, { dir: d, state: join(d, 'state'), ram: r.ram ? join(d, 'ram') : undefined, disks: Array.from({ length: r.disks }, (_, k) => join(d, `disk${k}.qcow2`)), efiVars: r.efiVars ? join(d, 'efivars.fd') : undefined, meta: snapMeta } satisfies SnapshotFiles];
      }),
    );
    return { dir, meta, machines };
  }

  /** Writes a checkpoint: `fill` captures each machine into its role's folder of a scratch dir, which then becomes the key's, whole. */
  async writeCheckpoint(key: string, meta: Omit<CheckpointMeta, 'key' | 'roles'>, fill: (dir: string) => Promise<CheckpointMeta['roles']>): Promise<CheckpointFiles> {
    await this.whole(key, async (tmp) => {
      const roles = await fill(tmp);
      await writeFile(join(tmp, 'meta.json'), JSON.stringify({ ...meta, key, roles }, null, 2));
    });
    return (await this.findCheckpoint(key))!;
  }

  /** Fills a scratch dir and renames it to `key`'s: a snapshot is there whole or not at all. */
  private async whole(key: string, fill: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = join(this.dir, `${key}.tmp-${process.pid}-${Date.now()}`);
    await mkdir(tmp, { recursive: true });
    try {
      await fill(tmp);
      // Another process keeping snapshots in the same directory may have made it meanwhile: theirs stands.
      await rename(tmp, join(this.dir, this.live(key))).catch(async () => rm(tmp, { recursive: true, force: true }));
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Drops a snapshot or checkpoint that failed to restore (`files`: the one that failed; default the key's current
   * one), so the next machine or case makes a new one, in the key's next generation. Its files stay until the run
   * ends (other machines may be starting from them this moment: a QEMU maps the RAM file when it starts); a
   * "discarded" mark hides it from find(), and close() removes it, from a kept store too.
   */
  async discard(key: string, files?: { dir: string }): Promise<void> {
    const name = files ? basename(files.dir) : this.live(key);
    // A later generation may stand already (another machine failed on the same one first): it stays.
    if (this.discarded.has(name)) return;
    this.building.delete(key);
    this.discarded.add(name);
    await writeFile(join(this.dir, name, 'discarded'), `${new Date().toISOString()}\n`).catch(() => undefined);
  }

  /** The end of the run: the store's directory goes, unless it is kept (then only what was discarded goes). */
  async close(): Promise<void> {
    if (!this.keep) return removeTempDir(this.dir);
    for (const name of this.discarded) await rm(join(this.dir, name), { recursive: true, force: true });
  }
}

/** A file's identity for a snapshot key: path, size, modification time and inode (a rebuilt image is a new one). */
export async function fileIdentity(path: string): Promise<string> {
  const s = await stat(path);
  return `${resolve(path)}:${s.size}:${Math.round(s.mtimeMs)}:${s.ino}`;
}

/** The key of a snapshot: a hash of everything that shapes the machine. */
export function snapshotKey(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 24);
}
