// A lab in use by one fleetlab process: its inventory, its lease store, the leases this process holds (renewed every
// third of the TTL, released when a case ends, on SIGINT/SIGTERM through the runner, and synchronously at exit where
// the store can), and the Board machines made of leased boards. The runner reaches it as a BoardProvider.
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigurationError, InfrastructureError } from '../harness/errors/fleetlab-error.ts';
import { makeTempDir } from '../harness/process/temp-dirs.ts';
import { loadProfile } from '../harness/qemu/profile-loader.ts';
import type { MachineProfile } from '../harness/qemu/profile.ts';
import type { AcquiredMachine, AcquireOptions } from '../harness/protocols/provider.ts';
import type { BoardProvider } from '../harness/runner/boards.ts';
import { Board } from './board.ts';
import { LabHost } from './lab-host.ts';
import { loadLab, selectBoards, type Lab } from './inventory.ts';
import type { BoardState, LeaseStore } from './lease-store.ts';
import { ownerId } from './lease-store.ts';
import { openLeaseStore } from './leases.ts';

/** Where a lab's leases live unless --lab-db says: $FLEETLAB_LAB_DB, else a SQLite file per lab in the state dir. */
export function defaultLabDb(lab: Lab): string {
  if (process.env.FLEETLAB_LAB_DB) return process.env.FLEETLAB_LAB_DB;
  const state = process.env.XDG_STATE_HOME ?? join(homedir(), '.local/state');
  return join(state, 'fleetlab', `lab-${lab.name}.sqlite`);
}

const POLL_MS = 1000;

export class LabSession implements BoardProvider {
  readonly lab: Lab;
  readonly store: LeaseStore;
  readonly owner: string;
  private readonly profiles = new Map<string, Promise<MachineProfile>>();
  private readonly held = new Set<string>();
  /** The lab hosts in use by this process, each with its one SSH connection. */
  private readonly hosts = new Map<string, LabHost>();

  private unprovision: (() => Promise<void>) | undefined;

  private constructor(lab: Lab, store: LeaseStore, owner: string, unprovision?: () => Promise<void>) {
    this.lab = lab;
    this.store = store;
    this.owner = owner;
    this.unprovision = unprovision;
    // A runner that exits (crash, process.exit after a signal) gives its boards back at once where the store can;
    // SIGKILL leaves them to expire.
    process.once('exit', this.onExit);
  }

  private readonly onExit = () => this.store.releaseAllSync?.(this.owner);

  /** Loads the lab file, opens its lease store and runs its provision hook. */
  static async open(file: string, opts: { db?: string; run?: string; provision?: boolean } = {}): Promise<LabSession> {
    const lab = await loadLab(file);
    const store = await openLeaseStore(opts.db ?? defaultLabDb(lab));
    let undo: void | (() => Promise<void>) = undefined;
    if (opts.provision !== false && lab.provision) {
      try {
        undo = await lab.provision();
      } catch (err) {
        await store.close();
        throw new ConfigurationError(`${lab.file}: provision failed: ${(err as Error).message}`, { cause: err });
      }
    }
    return new LabSession(lab, store, ownerId(opts.run ?? randomBytes(3).toString('hex')), undo || undefined);
  }

  get label(): string {
    return `lab ${this.lab.name} (${this.lab.file})`;
  }

  get ttlMs(): number {
    return this.lab.leaseTtlSeconds * 1000;
  }

  candidates(selector: string): string[] {
    return selectBoards(this.lab, selector);
  }

  profileOf(board: string): Promise<MachineProfile> {
    let p = this.profiles.get(board);
    if (!p) {
      const spec = this.lab.boards[board];
      if (!spec) throw new ConfigurationError(`${this.label} has no board "${board}"`);
      // A path is relative to the lab file; a name is a profile as anywhere else.
      const ref = /\.[jt]s$/.test(spec.profile) ? resolve(dirname(this.lab.file), spec.profile) : spec.profile;
      p = loadProfile(ref).catch((err: Error) => {
        throw new ConfigurationError(`${this.label}, board ${board}, profile: ${err.message}`, { cause: err });
      });
      this.profiles.set(board, p);
    }
    return p;
  }

  /** The lab host board `name` hangs off, if it names one. */
  hostOf(name: string): LabHost | undefined {
    const h = this.lab.boards[name]?.host;
    if (h === undefined) return undefined;
    let host = this.hosts.get(h);
    if (!host) this.hosts.set(h, (host = new LabHost(h, this.lab.hosts[h]!)));
    return host;
  }

  /** Every board with its state, for `lab status`. */
  async status(): Promise<Array<{ board: string; tags: string[]; profile: string } & BoardState>> {
    return Promise.all(Object.entries(this.lab.boards).map(async ([board, b]) => ({ board, tags: b.tags, profile: b.profile, ...(await this.store.state(board)) })));
  }

  async acquire(all: string[], opts: AcquireOptions): Promise<(AcquiredMachine & { board: NonNullable<AcquiredMachine['board']> }) | { skip: string }> {
    // A lab with a health limit hands out only boards whose last check passed within it.
    const limitH = this.lab.healthMaxAgeHours;
    let candidates = all;
    if (limitH !== undefined) {
      const fresh = await Promise.all(all.map(async (b) => ((h) => h?.ok && Date.now() - Date.parse(h.at) <= limitH * 3_600_000)(await this.store.health(b))));
      candidates = all.filter((_, i) => fresh[i]);
      if (!candidates.length) return { skip: `no board of ${all.join(', ')} passed a health check in the last ${limitH} h (the lab's healthMaxAgeHours): run fleetlab lab health --lab ${this.lab.file}` };
    }
    for (;;) {
      const got = await this.store.acquire(candidates, this.owner, this.ttlMs);
      if (got) return this.machineFor(got.board, opts);
      const states = await Promise.all(candidates.map(async (b) => [b, await this.store.state(b)] as const));
      // Reserved for someone or out of service, every one of them: waiting would not help.
      if (states.every(([, s]) => s.state === 'reserved' || s.state === 'quarantined')) {
        return { skip: `no board of ${candidates.join(', ')} is available: ${states.map(([b, s]) => `${b} ${s.state === 'reserved' ? `reserved by ${s.holder} until ${s.until}` : s.state === 'quarantined' ? `quarantined (${s.reason})` : s.state}`).join('; ')}` };
      }
      if (opts.deadline.remaining() < POLL_MS || opts.signal.aborted) {
        throw new ConfigurationError(`waited for a board of ${candidates.join(', ')} until the scenario's deadline; they are: ${states.map(([b, s]) => `${b} ${s.state}${s.state === 'leased' ? ` by ${s.owner} until ${s.expiresAt}` : ''}`).join('; ')}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** A leased board as the case's machine: released by powering it off and giving the lease back. */
  private async machineFor(boardName: string, opts: Omit<AcquireOptions, 'deadline' | 'signal'>): Promise<AcquiredMachine & { board: NonNullable<AcquiredMachine['board']> }> {
    const { board, release } = await this.boardFor(boardName, opts);
    return {
      machine: board,
      board: { board: boardName, lab: this.lab.name, serial: board.serialDevice, power: board.power.describe, ...(board.host ? { host: board.host.describe } : {}) },
      release: async (o) => {
        await board.stop();
        await release(o);
      },
    };
  }

  /** The Board of a board this process has just leased, renewing the lease until `release`. */
  private async boardFor(boardName: string, opts: Omit<AcquireOptions, 'deadline' | 'signal'>): Promise<{ board: Board; release: AcquiredMachine['release'] }> {
    this.held.add(boardName);
    const renew = setInterval(() => {
      void this.store.renew(boardName, this.owner, this.ttlMs).then(
        (ok) => ok || opts.onLost(`the lease of board ${boardName} could not be renewed: it expired and is no longer this runner's`),
        (err: Error) => opts.onLost(`renewing the lease of board ${boardName} failed: ${err.message}`),
      );
    }, Math.max(1000, this.ttlMs / 3));
    renew.unref();
    const release = async (o?: { quarantine?: string }) => {
      clearInterval(renew);
      if (o?.quarantine) await this.store.quarantine(boardName, o.quarantine);
      await this.store.release(boardName, this.owner);
      this.held.delete(boardName);
    };
    try {
      const spec = this.lab.boards[boardName]!;
      return { board: new Board(boardName, spec, await this.profileOf(boardName), { name: opts.role, logDir: opts.logDir, onConsoleLine: opts.onConsoleLine, consoleChecks: opts.consoleChecks, host: this.hostOf(boardName) }), release };
    } catch (err) {
      await release();
      throw err;
    }
  }

  /**
   * For a command run by a person (lab power, console, check): leases board `name` now or fails saying its state and
   * `whyFree`, runs `fn` with its Board (the lease renewed meanwhile), then gives it back.
   */
  async withBoard<T>(name: string, fn: (board: Board) => Promise<T>, opts: { whyFree: string; evenQuarantined?: boolean; logDir?: string }): Promise<T> {
    const lease = await this.store.acquire([name], this.owner, this.ttlMs, { evenQuarantined: opts.evenQuarantined });
    if (!lease) throw new InfrastructureError(`${name} is ${(await this.store.state(name)).state}; ${opts.whyFree}`);
    const { board, release } = await this.boardFor(name, { role: name, logDir: opts.logDir ?? (await makeTempDir('fleetlab-logs-lab-')), onLost: (why) => process.stderr.write(`fleetlab: ${why}\n`) });
    try {
      return await fn(board);
    } finally {
      await release();
    }
  }


  async close(): Promise<void> {
    process.off('exit', this.onExit);
    for (const b of this.held) await this.store.release(b, this.owner).catch(() => undefined);
    this.held.clear();
    await this.store.close();
    for (const h of this.hosts.values()) h.close();
    this.hosts.clear();
    const undo = this.unprovision;
    this.unprovision = undefined;
    await undo?.();
  }
}
