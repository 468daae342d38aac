// Temporary directories of a run (QEMU's sockets, disk overlays, logs of machines started outside a run): removed
// when their owner is done, all at once when the process exits (even through process.exit() on SIGINT/SIGTERM), and,
// when the owner was killed (SIGKILL, a crashed CI job), by the next fleetlab process: each holds an owner file.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from './pid-alive.ts';

const live = new Set<string>();
let hooked = false;
let swept = false;
/** Names fleetlab gives its temporary directories (under the system temp dir). */
const OURS = /^fleetlab-/;
const OWNER_FILE = '.fleetlab-owner';
/** Directories of dead owners that hold logs are kept this long, for a person reading them after a crash. */
const LOG_GRACE_MS = 3600_000;
/** Directories from before owner files existed are removed once this old. */
const UNOWNED_MS = 24 * 3600_000;

/** This process, as an owner file names it: pid and start time (so a reused pid is not mistaken for it). */
function ownerStamp(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat is the start time; the command name (field 2) may hold spaces, so count after ")".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/** True if the process an owner file names is still the one that wrote it. */
function ownerAlive(stamp: string): boolean {
  const pid = Number(stamp.split(' ')[0]);
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) && ownerStamp(pid) === stamp.trim();
}

/**
 * Removes what dead fleetlab processes left in the temp dir: run and state directories at once, log directories
 * after an hour, directories without an owner file (older versions) after a day. Returns what it removed.
 */
export function sweepLeftovers(dir = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => OURS.test(n));
  } catch {
    return removed;
  }
  for (const name of names) {
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (!st.isDirectory() || live.has(path)) continue;
      let owner: string | undefined;
      try {
        owner = readFileSync(join(path, OWNER_FILE), 'utf8');
      } catch {
        owner = undefined;
      }
      const age = Date.now() - st.mtimeMs;
      const keepsLogs = name.startsWith('fleetlab-logs');
      const dead = owner ? !ownerAlive(owner) : age > UNOWNED_MS;
      if (!dead || (owner && keepsLogs && age < LOG_GRACE_MS)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      /* raced with its owner or another sweeper */
    }
  }
  return removed;
}

/** Marks `dir` as this process's, so a later sweep can tell when it was left behind. */
export async function claimDir(dir: string): Promise<void> {
  await writeFile(join(dir, OWNER_FILE), ownerStamp(process.pid) ?? String(process.pid));
}

/** Creates `dir` (under the temp dir, named fleetlab-…) and marks it as this process's; it outlives the process, for a while. */
export function makeOwnedDirSync(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, OWNER_FILE), ownerStamp(process.pid) ?? String(process.pid));
}

/** A fresh 0700 directory under the system temp dir, removed at process exit if not before. */
export async function makeTempDir(prefix: string): Promise<string> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const d of live) rmSync(d, { recursive: true, force: true });
    });
  }
  if (!swept) {
    swept = true;
    sweepLeftovers();
  }
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o700);
  live.add(dir);
  await claimDir(dir);
  return dir;
}

/** Removes a directory made by makeTempDir. */
export async function removeTempDir(dir: string): Promise<void> {
  live.delete(dir);
  await rm(dir, { recursive: true, force: true });
}
