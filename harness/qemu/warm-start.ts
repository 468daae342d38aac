// Warm starts: a machine booted to its shell once is saved — QEMU's migration stream in a file, its disk overlays and
// EFI variable store copied beside it while the VM is stopped — and later machines of the same shape restore that
// instead of booting (`-incoming defer` + `migrate-incoming`). Snapshots live in one run's store, built once per key
// (the first machine that needs one boots and saves; the others wait for it), and are removed when the run ends
// unless --keep-snapshots names a directory to keep them in for the next run.
//
// Why migration and not savevm/-loadvm: savevm writes into the qcow2 disks and refuses when any writable drive is not
// qcow2, and a UEFI machine's variable store is a raw pflash file; a migration stream covers RAM and device state
// (pflash included) whatever the drives are. Both restore in about 0.3 s on this host (issue #15's measurements).
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';

/** What a snapshot holds, by file. */
export interface SnapshotFiles {
  dir: string;
  /** QEMU's migration stream (RAM and device state). */
  state: string;
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

type Claim = { owner: true; done: (s: SnapshotFiles | undefined) => void } | { owner: false; wait: Promise<SnapshotFiles | undefined> };

/** The snapshots of one run: keyed by everything that shapes a machine, built once per key. */
export class SnapshotStore {
  readonly dir: string;
  /** Kept after the run (--keep-snapshots); else removed by close(). */
  readonly keep: boolean;
  private readonly building = new Map<string, Promise<SnapshotFiles | undefined>>();
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

  /** The complete snapshot for `key`, if one exists. */
  async find(key: string): Promise<SnapshotFiles | undefined> {
    const dir = join(this.dir, key);
    const meta = await readFile(join(dir, 'meta.json'), 'utf8').then((t) => JSON.parse(t) as SnapshotMeta & { disks: number; efiVars: boolean }, () => undefined);
    if (!meta) return undefined;
    return { dir, state: join(dir, 'state'), disks: Array.from({ length: meta.disks }, (_, k) => join(dir, `disk${k}.qcow2`)), efiVars: meta.efiVars ? join(dir, 'efivars.fd') : undefined, meta };
  }

  /**
   * The first caller for `key` owns the build and must call done() with what it made (or undefined); later callers
   * get a promise of it. One build per key per run.
   */
  claim(key: string): Claim {
    const pending = this.building.get(key);
    if (pending) return { owner: false, wait: pending };
    let done!: (s: SnapshotFiles | undefined) => void;
    this.building.set(key, new Promise((r) => (done = r)));
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
  async write(key: string, meta: Omit<SnapshotMeta, 'key'>, files: { disks: string[]; efiVars?: string }, fill: (stateFile: string) => Promise<void>): Promise<SnapshotFiles> {
    const tmp = join(this.dir, `${key}.tmp-${process.pid}-${Date.now()}`);
    await mkdir(tmp, { recursive: true });
    try {
      await fill(join(tmp, 'state'));
      for (const [k, d] of files.disks.entries()) await copyFile(d, join(tmp, `disk${k}.qcow2`));
      if (files.efiVars) await copyFile(files.efiVars, join(tmp, 'efivars.fd'));
      await writeFile(join(tmp, 'meta.json'), JSON.stringify({ ...meta, key, disks: files.disks.length, efiVars: !!files.efiVars }, null, 2));
      // Another process keeping snapshots in the same directory may have made it meanwhile: theirs stands.
      await rename(tmp, join(this.dir, key)).catch(async () => rm(tmp, { recursive: true, force: true }));
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return (await this.find(key))!;
  }

  /** Removes a snapshot that failed to restore, so the next machine makes a new one. */
  async discard(key: string): Promise<void> {
    this.building.delete(key);
    await rm(join(this.dir, key), { recursive: true, force: true });
  }

  /** The end of the run: the store's directory goes, unless it is kept. */
  async close(): Promise<void> {
    if (!this.keep) await removeTempDir(this.dir);
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
