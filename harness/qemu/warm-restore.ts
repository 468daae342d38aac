// Warm starts of a QEMU machine: restore a snapshot of its shape (QEMU's migration stream, its disks and EFI
// variables) instead of booting, or boot, save one and leave it for the next. After a restore the guest gets the
// host's clock, its own hostname, a fresh machine-id, new randomness and its own MACs: no two restored machines look
// alike. What rules a snapshot out makes a cold start whose reason the report gives. The store is warm-start.ts.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { NicPlan } from '../net/fabric.ts';
import type { SupervisedProcess } from '../process/supervisor.ts';
import { processUsage } from '../process/usage.ts';
import type { StartReport, VmFacts } from '../protocols/machine.ts';
import type { ExecOptions, ExecResult } from '../protocols/shell.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { shellQuote } from '../shell/guest-helper.ts';
import { type Deadline, deadlineFrom, formatMs, now, pollUntil } from '../time/deadline.ts';
import { chooseAccel } from './accel-probe.ts';
import type { BootMedia } from './boot-media.ts';
import { which } from './host-packages.ts';
import type { MachineProfile } from './profile.ts';
import { type QemuLaunch, qemuArgv } from './qemu-argv.ts';
import type { QmpClient } from './qmp.ts';
import { copySparse, ignoreSharedRam, ramMemfd } from './shared-ram.ts';
import { type CapturedState, fileIdentity, snapshotKey, type SnapshotFiles, type SnapshotStore } from './warm-start.ts';

/** A restored guest that had this much of a core without its shell answering is taken for a broken restore. */
const RESTORE_CPU_SECONDS = 20;

/** How startWarm() will start a machine (prepareWarm). */
export type WarmPlan =
  | { kind: 'cold'; reason: string }
  | { kind: 'restore'; key: string; snap: SnapshotFiles }
  | { kind: 'build'; key: string; parts: Record<string, unknown>; done: (s: SnapshotFiles | undefined) => void }
  | { kind: 'wait'; key: string; wait: Promise<SnapshotFiles | undefined> };

/** What a warm start needs of its QemuMachine. */
export interface WarmHost {
  readonly name: string;
  readonly profile: MachineProfile;
  readonly logDir: string;
  readonly log: { readonly path: string; note(line: string): void; lastLines(n?: number): string[] };
  readonly facts: VmFacts | undefined;
  readonly media: BootMedia;
  readonly accel: 'auto' | 'kvm' | 'tcg' | 'hvf' | undefined;
  readonly nics: NicPlan[];
  readonly hostLink: boolean;
  boots: number;
  /** The running QEMU's process. */
  process(): SupervisedProcess | undefined;
  /** The running QEMU's QMP. */
  qmp(): QmpClient;
  /** Its NICs' MACs in QEMU's device order. */
  nicMacs(): string[];
  start(opts: WaitOptions): Promise<void>;
  waitForShell(opts: WaitOptions): Promise<void>;
  /** The shell channel after a restore: the guest's shell lives on, the host's side of it starts anew. */
  resumeShell(): void;
  kill(by: string): Promise<void>;
  succeed(command: string, opts?: ExecOptions): Promise<string>;
  execute(command: string, opts?: ExecOptions): Promise<ExecResult>;
}

export class WarmStarts {
  /** The snapshot the next launch restores instead of booting. */
  pending: SnapshotFiles | undefined;
  private readonly m: WarmHost;
  /** How the running QEMU holds the guest's RAM (ramBacking() at its launch). */
  private ram: QemuLaunch['ram'];

  constructor(host: WarmHost) {
    this.m = host;
  }

  /**
   * Starts the machine and waits for its shell, restoring a snapshot of its shape from `store` when there is one (a
   * warm start) and booting otherwise (a cold start). The first machine of a shape boots and leaves a snapshot for
   * the next; machines that need the same snapshot meanwhile wait for it. After a restore the shell channel is set up
   * anew, and the guest gets the host's clock, this machine's hostname, a fresh machine-id and new randomness: no
   * two restored machines look alike. A restore that fails is noted, its snapshot dropped, and the machine boots cold.
   * What rules a snapshot out (networks, an SSH forward, a CD-ROM, the Pi's firmware, a serial-login shell, a second
   * start of this machine) makes a cold start whose reason the report gives.
   */
  async start(store: SnapshotStore, opts?: WaitOptions & { plan?: WarmPlan }): Promise<StartReport> {
    const deadline = deadlineFrom(opts, 600_000, `warm start of ${this.m.name}`, 'pass { timeout } to startWarm()');
    const signal = opts?.signal;
    const cold = async (reason: string, extra: Partial<StartReport> = {}): Promise<StartReport> => {
      const t = now();
      await this.m.start({ deadline, signal });
      await this.m.waitForShell({ deadline, signal });
      return this.reportStart({ mode: 'cold', ms: now() - t, reason, ...extra });
    };
    const plan = opts?.plan ?? (await this.prepare(store));
    if (plan.kind === 'cold') return cold(plan.reason);
    const key = plan.key;
    let snap: SnapshotFiles | undefined;
    let waitedMs: number | undefined;
    if (plan.kind === 'restore') snap = plan.snap;
    else if (plan.kind === 'build') {
      // The first of its shape: boot, and leave the snapshot for the others.
      const t = now();
      let made: SnapshotFiles | undefined;
      try {
        await this.m.start({ deadline, signal });
        await this.m.waitForShell({ deadline, signal });
        const bootMs = now() - t;
        made = await this.saveSnapshot(store, key, plan.parts, bootMs, deadline).catch((err: unknown) => {
          this.m.log.note(`warm start: no snapshot taken: ${String(err)}`);
          return undefined;
        });
        return this.reportStart({ mode: 'cold', ms: now() - t, reason: made ? 'first of its shape: booted and saved the snapshot' : 'first of its shape: booted, but the snapshot could not be taken', snapshot: made ? key : undefined });
      } finally {
        plan.done(made);
      }
    } else {
      const tw = now();
      snap = await plan.wait;
      waitedMs = now() - tw;
      if (!snap) return cold('the machine that booted first could not take a snapshot', { waitedMs });
    }
    const tr = now();
    try {
      await this.restore(snap, { deadline, signal });
    } catch (err) {
      if (signal?.aborted) throw err;
      const why = (err as Error).message.split('\n').slice(0, 3).join(' / ');
      // A restore that ran out of time says the host is busy, not that the snapshot is bad: others still use it.
      const bad = !(err instanceof TimeoutError);
      this.m.log.note(`warm start: restoring snapshot ${key} failed (${why}); ${bad ? 'dropping it and ' : ''}booting cold`);
      await this.dropRestore();
      if (bad) await store.discard(key, snap);
      return cold('the restore failed', { restoreFailed: why, waitedMs });
    }
    this.m.log.note(`warm start: restored snapshot ${key} in ${formatMs(now() - tr)} (made by ${snap.meta.madeBy}, whose boot is logged in ${snap.meta.bootLog}); the kernel's boot id is that boot's`);
    return this.reportStart({ mode: 'warm', ms: now() - tr, waitedMs, snapshot: key });
  }

  /**
   * Decides how startWarm() will start this machine: restore an existing snapshot, build it (boot and save), wait for
   * the machine building it, or boot cold and why. Deciding claims the build, so a runner calls it in plan order.
   */
  async prepare(store: SnapshotStore): Promise<WarmPlan> {
    const ruledOut = this.warmRuledOut();
    if (ruledOut) return { kind: 'cold', reason: ruledOut };
    const choice = await chooseAccel(this.m.accel ?? this.m.profile.accel, this.m.profile.arch);
    let parts: Record<string, unknown>;
    try {
      parts = await this.snapshotParts(choice.accel);
    } catch (err) {
      return { kind: 'cold', reason: `no snapshot key: ${(err as Error).message.split('\n')[0]}` };
    }
    const key = snapshotKey(parts);
    const snap = await store.find(key);
    if (snap) return { kind: 'restore', key, snap };
    const claim = store.claim(key);
    return claim.owner ? { kind: 'build', key, parts, done: claim.done } : { kind: 'wait', key, wait: claim.wait };
  }

  /**
   * Starts the machine from `snap` (QEMU's state, its disks, its EFI variables) and waits for its shell, which then
   * gets this machine's identity: the host's clock, its hostname, a fresh machine-id, new randomness, its own MACs.
   * Throws when the restore fails; dropRestore() then puts the machine back on its own media.
   */
  async restore(snap: SnapshotFiles, opts: { deadline: Deadline; signal?: AbortSignal }): Promise<void> {
    try {
      this.pending = snap;
      await this.m.start(opts);
      this.m.resumeShell();
      await this.waitForRestoredShell(opts);
      await this.refreshIdentity(snap, opts);
    } finally {
      this.pending = undefined;
    }
  }

  /**
   * Waits for a restored guest's shell, judging the restore by the CPU time its QEMU had, not by the clock: on a quiet
   * host a restored guest answers within ~2 s of a core, so 60 s without an answer means a broken restore (the caller
   * then boots cold); on a host busy with a fleet (a 64-node grid: load ~50 on 2 cores) the same restore may get a few
   * seconds of CPU in a minute, and a cold boot would need ten times more. So while its QEMU has had less than
   * RESTORE_CPU_SECONDS of CPU since the restore began, each 60 s without an answer is noted and waited again, up to
   * the warm start's own deadline.
   */
  private async waitForRestoredShell(opts: { deadline: Deadline; signal?: AbortSignal }): Promise<void> {
    const cpu = () => {
      const pid = this.m.process()?.pid;
      return pid === undefined ? undefined : processUsage(pid)?.cpuSeconds;
    };
    const cpu0 = cpu();
    const t0 = now();
    for (;;) {
      try {
        return await this.m.waitForShell({ deadline: opts.deadline.child(60_000, `shell of ${this.m.name} after a restore`), signal: opts.signal });
      } catch (err) {
        const had = cpu0 === undefined ? undefined : (cpu() ?? Infinity) - cpu0;
        if (!(err instanceof TimeoutError) || opts.signal?.aborted || had === undefined || had >= RESTORE_CPU_SECONDS || opts.deadline.expired()) throw err;
        this.m.log.note(`warm start: no shell ${formatMs(now() - t0)} after the restore, but its QEMU had only ${had.toFixed(1)} s of CPU (host load ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores): the host is busy, not the restore broken; waiting on`);
      }
    }
  }

  /** After a failed restore: QEMU gone, the overlays on the machine's own disks again, fresh EFI variables, no boots. */
  async dropRestore(): Promise<void> {
    await this.m.kill('a failed restore').catch(() => undefined);
    await this.m.media.rebaseDisks(this.m.media.diskSources, this.m.profile.firmware.kind === 'uefi' ? this.m.profile.firmware.vars : undefined);
    this.m.boots = 0;
  }

  /**
   * How the next launch holds the guest's RAM (shared-ram.ts): a machine that may be saved runs on a shared memfd, so
   * that a snapshot carries its RAM as a file; one restored from a snapshot with such a file maps it copy-on-write.
   * Machines that are never saved or restored, and QEMU outside Linux, keep QEMU's own RAM.
   */
  ramBacking(): QemuLaunch['ram'] {
    const ownBackend = this.m.profile.qemu.extraArgs.some((a) => a.includes('memory-backend'));
    this.ram = process.platform !== 'linux' || ownBackend || this.ruledOut() ? undefined : this.pending?.ram ? { kind: 'file', path: this.pending.ram } : { kind: 'memfd' };
    return this.ram;
  }

  /** Why this machine's state cannot be saved or restored at all (whatever it did since it started); undefined when it can. */
  ruledOut(): string | undefined {
    const byProfile = profileNotRestorable(this.m.profile);
    if (byProfile) return byProfile;
    const testbed = this.m.profile.boot.kind === 'testbed' || this.m.profile.boot.kind === 'testbed-disk';
    if ((this.m.nics?.length || this.m.hostLink) && !testbed) return "it is on a network, and only fleetlab's testbed can take a machine's MACs and addresses after a restore (/etc/fleetlab/network)";
    const b = this.m.profile.boot;
    if (b.kind === 'disk' && (b.media === 'cdrom' || /\.iso$/i.test(b.image))) return 'it boots from a CD-ROM';
    if (this.m.media.changed) return 'its media were changed (useMedia: an install flow)';
    return undefined;
  }

  /** Everything that shapes this machine, for a snapshot's or checkpoint's key (snapshotParts under the chosen accelerator). */
  async shapeParts(): Promise<Record<string, unknown>> {
    const choice = await chooseAccel(this.m.accel ?? this.m.profile.accel, this.m.profile.arch);
    return this.snapshotParts(choice.accel);
  }

  /** Stops the VM (QMP stop) so that its state can be captured; thaw() lets it run on. */
  async freeze(): Promise<void> {
    await this.m.qmp().execute('stop');
  }

  /**
   * Writes the stopped VM's state into `dir`: QEMU's migration stream (which also flushes its disks), copies of its
   * disk overlays and of its EFI variable store. What a restore needs to know of them is returned.
   */
  async capture(dir: string, deadline: Deadline): Promise<CapturedState> {
    await mkdir(dir, { recursive: true });
    // Shared RAM stays out of the stream: its pages go to a file of their own, which restored machines map.
    const pid = this.m.process()?.pid;
    const ram = this.ram?.kind === 'memfd' && pid !== undefined;
    if (ram) await ignoreSharedRam(this.m.qmp(), true);
    try {
      await this.m.qmp().execute('migrate', { uri: `exec:cat > ${shellQuote(join(dir, 'state'))}` });
      await this.migrationDone('saving', deadline);
    } finally {
      if (ram) await ignoreSharedRam(this.m.qmp(), false);
    }
    if (ram) await copySparse(await ramMemfd(pid!), join(dir, 'ram'));
    const disks = (this.m.media.disks ?? []).filter((d) => d.media === 'disk').map((d) => d.path);
    for (const [k, d] of disks.entries()) await copyFile(d, join(dir, `disk${k}.qcow2`));
    if (this.m.media.efiVars) await copyFile(this.m.media.efiVars, join(dir, 'efivars.fd'));
    return { disks: disks.length, efiVars: !!this.m.media.efiVars, ram, macs: this.m.nicMacs(), boots: this.m.boots };
  }

  /** Lets a frozen VM run on, its clock set to the host's (it stood still while the VM was stopped). */
  async thaw(): Promise<void> {
    await this.m.qmp().execute('cont').catch(() => undefined);
    await this.m.execute(`date -u -s '${utcDate()}' >/dev/null 2>&1; true`, { timeout: 30_000 }).catch(() => undefined);
  }

  private reportStart(r: StartReport): StartReport {
    r.ms = Math.round(r.ms);
    if (r.waitedMs !== undefined) r.waitedMs = Math.round(r.waitedMs);
    if (this.m.facts) this.m.facts.start = r;
    this.m.log.note(`start: ${r.mode} in ${formatMs(r.ms)}${r.reason ? ` (${r.reason})` : ''}`);
    return r;
  }

  /** Why this machine cannot be restored from (or saved to) a snapshot; undefined when it can. */
  private warmRuledOut(): string | undefined {
    if (this.m.boots > 0) return 'not its first start: its disks have moved on from any snapshot';
    return this.ruledOut();
  }

  /** Everything that shapes the machine, for its snapshot key: QEMU's full argv with per-instance paths and names replaced, and the identity of every file it reads. */
  private async snapshotParts(accel: string): Promise<Record<string, unknown>> {
    const boot = await this.m.media.resolve(join(tmpdir(), 'fleetlab-no-run-dir'));
    const disks = (boot.disks ?? []).map((d, k) => ({ ...d, path: `$DISK${k}` }));
    const append = boot.append?.split(/\s+/).map((w) => (w === `fleetlab.hostname=${this.m.name}` ? 'fleetlab.hostname=$NAME' : w)).join(' ');
    // NICs as devices (model, count, order); their MACs, ports and addresses are this machine's, set after a restore.
    const nics = (this.m.nics ?? []).map((_, i) => ({ mac: `$MAC${i}`, qemuPort: 0, switchPort: 0 }));
    const hostLink = this.m.hostLink ? { hostPort: 0, mac: '$SSHMAC' } : undefined;
    const netConfig = nics.length || hostLink ? '$RUN/net.conf' : undefined;
    const argv = qemuArgv(this.m.profile, { name: '$NAME', runDir: '$RUN', accel: accel as 'kvm' | 'tcg' | 'hvf', efiVars: this.m.media.efiVars ? '$VARS' : undefined, ...boot, append, disks, fwCfgHostname: boot.fwCfgHostname ? '$NAME' : undefined, nics, hostLink, netConfig });
    const fw = this.m.profile.firmware;
    const files = [this.m.profile.qemu.binary.includes('/') ? this.m.profile.qemu.binary : (which(this.m.profile.qemu.binary) ?? this.m.profile.qemu.binary), boot.kernel, boot.initrd, boot.dtb, ...this.m.media.diskSources.map((d) => d.path), ...(fw.kind === 'uefi' ? [fw.code, fw.vars] : fw.kind === 'bios-file' ? [fw.path] : [])];
    return { v: 2, profile: this.m.profile, argv, files: await Promise.all(files.filter((f): f is string => !!f).map(fileIdentity)) };
  }

  /** Stops the VM, writes its migration stream and copies its disks and variables into the store, and lets it run on. */
  private async saveSnapshot(store: SnapshotStore, key: string, parts: unknown, bootMs: number, deadline: Deadline): Promise<SnapshotFiles> {
    const t = now();
    await this.freeze();
    try {
      const snap = await store.write(key, { profile: this.m.profile.name, madeBy: `${this.m.name} (${this.m.logDir})`, bootLog: this.m.log.path, bootMs: Math.round(bootMs), createdAt: new Date().toISOString(), parts, macs: this.m.nicMacs() }, (dir) => this.capture(dir, deadline));
      this.m.log.note(`warm start: snapshot ${key} saved in ${formatMs(now() - t)}`);
      return snap;
    } finally {
      await this.thaw();
    }
  }

  /** Feeds a paused QEMU started with -incoming defer the snapshot's state and waits until it is loaded. */
  async incoming(proc: SupervisedProcess, snap: SnapshotFiles, deadline: Deadline, signal?: AbortSignal): Promise<void> {
    if (!existsSync(snap.state)) throw new InfrastructureError(`snapshot ${snap.meta.key} has no state file ${snap.state}`);
    // A stream without the RAM (its file is mapped as this machine's RAM): QEMU must be told to expect none.
    const ram = this.ram?.kind === 'file';
    if (snap.ram && !ram) throw new InfrastructureError(`snapshot ${snap.meta.key} keeps its RAM in ${snap.ram}, but machine ${this.m.name} was not started on it`);
    if (ram) await ignoreSharedRam(this.m.qmp(), true);
    await this.m.qmp().execute('migrate-incoming', { uri: `exec:cat ${shellQuote(snap.state)}` });
    await this.migrationDone('restoring', deadline, signal, proc);
    if (ram) await ignoreSharedRam(this.m.qmp(), false);
    // Until the guest has this machine's MACs its NICs carry the snapshot maker's: their links stay down (QEMU drops
    // what the guest sends) so that no peer learns the maker's identity (a batman-adv originator that is not there).
    await this.fabricLinks(false);
  }

  /** Polls query-migrate until the migration completed; throws when it failed or QEMU exited. */
  private async migrationDone(what: string, deadline: Deadline, signal?: AbortSignal, proc?: SupervisedProcess): Promise<void> {
    const budget = deadline.child(120_000, `${what} the snapshot of ${this.m.name}`);
    let last = '';
    const r = await pollUntil(
      async () => {
        if (proc && !proc.running) throw new InfrastructureError(`QEMU of ${this.m.name} exited while ${what} a snapshot: ${proc.stderrTail().trim().split('\n').slice(-3).join(' / ') || 'no stderr'}`);
        const q = await this.m.qmp().execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
        last = q.status ?? 'none';
        if (q.status === 'completed') return true;
        if (q.status === 'failed' || q.status === 'cancelled') throw new InfrastructureError(`${what} the snapshot of ${this.m.name} failed: ${q['error-desc'] ?? q.status}`);
        return undefined;
      },
      { deadline: budget, intervalMs: 25, signal },
    );
    if (r.timedOut) throw new TimeoutError('infrastructure', { awaited: `${what} the snapshot (migration status: ${last})`, deadline: budget, machine: this.m.name, lastLines: this.m.log.lastLines(10) });
  }

  /** After a restore: the host's clock, this machine's hostname, a fresh machine-id, new randomness. */
  private async refreshIdentity(snap: SnapshotFiles, opts: WaitOptions): Promise<void> {
    const id = randomBytes(16).toString('hex');
    const seed = [...randomBytes(64)].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    const name = this.m.name;
    await this.m.succeed(
      [
        `date -u -s '${utcDate()}' >/dev/null`,
        `hostname ${shellQuote(name)} 2>/dev/null`,
        `{ [ -L /etc/hostname ] || printf '%s\\n' ${shellQuote(name)} > /etc/hostname; } 2>/dev/null`,
        `{ [ ! -e /etc/machine-id ] || [ -L /etc/machine-id ] || printf '%s\\n' ${id} > /etc/machine-id; } 2>/dev/null`,
        `printf '${seed}' > /dev/urandom`,
        'true',
      ].join('; '),
      opts,
    );
    // The NICs still carry the MACs of the machine that made the snapshot: each gets this machine's, then the
    // testbed sets its networks up again from what this QEMU passes (addresses, the mesh).
    const macs = this.m.nicMacs();
    if (macs.length) {
      const old = snap.meta.macs ?? [];
      if (old.length !== macs.length) throw new InfrastructureError(`snapshot ${snap.meta.key} has ${old.length} NIC(s), machine ${this.m.name} ${macs.length}`);
      const swap = macs.map((mac, i) => `for d in /sys/class/net/*; do [ "$(cat $d/address)" = ${old[i]} ] && ip link set \${d##*/} down && ip link set \${d##*/} address ${mac}; done`);
      await this.m.succeed([...swap, '/etc/fleetlab/network'].join('\n'), opts);
    }
    await this.fabricLinks(true);
  }

  /** Sets the links of this machine's fabric NICs (QEMU's netdevs net0 …) up or down. */
  private async fabricLinks(up: boolean): Promise<void> {
    for (let i = 0; i < (this.m.nics?.length ?? 0); i++) await this.m.qmp().execute('set_link', { name: `net${i}`, up });
  }
}

/** Why no machine of `profile` can be saved or restored, whatever its networks and media; undefined when one can. */
export function profileNotRestorable(profile: MachineProfile): string | undefined {
  if (profile.guest.shell.kind !== 'backdoor') return `its shell channel is ${profile.guest.shell.kind}, not the backdoor (a login cannot be carried across a restore)`;
  if (profile.firmware.kind === 'raspi') return "the Pi's firmware stand-in reads the SD card at every start";
  return undefined;
}

/** Now, UTC, as busybox and coreutils date -s both read it. */
function utcDate(): string {
  return new Date().toISOString().replace('T', ' ').slice(0, 19);
}
