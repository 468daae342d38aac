// Live sessions on this host: a run paused at a breakpoint or a failure, or `fleetlab up`. Each has a folder in the
// user's runtime directory with session.json (what it is, its machines, their consoles and SSH endpoints) and the
// Unix sockets of its REPL and consoles; `fleetlab attach`, `console` and `ssh` find machines there. A session whose
// process is gone is stale and removed by whoever looks.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { pidAlive } from '../process/pid-alive.ts';

/** A machine of a session, as `fleetlab console` and `fleetlab ssh` reach it. */
export interface SessionMachine {
  name: string;
  profile: string;
  /** Its serial console's Unix socket ('' while it is not running). */
  console: string;
  /** Where `fleetlab ssh` reaches it, when it has an SSH forward (ssh: true, `fleetlab up`). */
  ssh?: { host: string; port: number; user: string; privateKey?: string; hostKey?: string };
}

export interface SessionInfo {
  /** The run id, or up-<time> for `fleetlab up`. */
  id: string;
  kind: 'run' | 'up';
  pid: number;
  /** What it is paused at: "smoke [x86_64-direct]: before the first step". */
  title: string;
  /** The run's output folder. */
  outputDir?: string;
  /** The REPL's Unix socket, for `fleetlab attach`. */
  repl?: string;
  machines: SessionMachine[];
}

/** $FLEETLAB_RUNTIME_DIR, else $XDG_RUNTIME_DIR/fleetlab, else <tmp>/fleetlab-<uid>: short, so socket paths fit. */
export function runtimeDir(): string {
  const dir = process.env.FLEETLAB_RUNTIME_DIR || (process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'fleetlab') : join(tmpdir(), `fleetlab-${userInfo().uid}`));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** A session's folder, made now; `remove()` deletes it (sockets and all). */
export function openSessionDir(id: string): { dir: string; publish(info: SessionInfo): void; remove(): void } {
  const dir = join(runtimeDir(), `${id.replace(/[^A-Za-z0-9._-]/g, '_')}-${process.pid}`);
  mkdirSync(join(dir, 'consoles'), { recursive: true, mode: 0o700 });
  return {
    dir,
    publish: (info) => writeFileSync(join(dir, 'session.json'), `${JSON.stringify(info, null, 2)}\n`),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The sessions whose process still runs (the folders of those gone are removed). */
export function liveSessions(): SessionInfo[] {
  const root = runtimeDir();
  const out: SessionInfo[] = [];
  for (const name of readdirSync(root)) {
    const file = join(root, name, 'session.json');
    if (!existsSync(file)) continue;
    let info: SessionInfo;
    try {
      info = JSON.parse(readFileSync(file, 'utf8')) as SessionInfo;
    } catch {
      continue;
    }
    if (pidAlive(info.pid)) out.push(info);
    else rmSync(join(root, name), { recursive: true, force: true });
  }
  return out;
}

/** The session `which` names (a run id or its start, an output folder), or the only one there is. */
export function findSession(which: string | undefined, what: string): SessionInfo {
  const all = liveSessions();
  const list = () => (all.length ? `Live sessions: ${all.map((s) => `${s.id} (${s.title})`).join('; ')}.` : 'None is live: pause a run (ctx.pause, --debug, --pause-on-failure) or start machines with fleetlab up.');
  if (which === undefined) {
    if (all.length === 1) return all[0]!;
    throw new ConfigurationError(`${what}: ${all.length ? 'name the session' : 'no session to attach to'}. ${list()}`);
  }
  const dir = resolve(which);
  const hits = all.filter((s) => s.id === which || s.id.startsWith(which) || (s.outputDir !== undefined && (s.outputDir === dir || safeReal(s.outputDir) === safeReal(dir))));
  if (hits.length === 1) return hits[0]!;
  throw new ConfigurationError(`${what}: ${hits.length ? `"${which}" names ${hits.length} sessions` : `no live session "${which}"`}. ${list()}`, { details: { session: which } });
}

/** A machine of a live session, by name (or session/name); the error lists what there is. */
export function findMachine(name: string, what: string, session?: string): { session: SessionInfo; machine: SessionMachine } {
  const all = session ? [findSession(session, what)] : liveSessions();
  const hits = all.flatMap((s) => s.machines.filter((m) => m.name === name).map((m) => ({ session: s, machine: m })));
  if (hits.length === 1) return hits[0]!;
  const have = all.flatMap((s) => s.machines.map((m) => `${m.name} (${s.id})`));
  throw new ConfigurationError(
    `${what}: ${hits.length ? `"${name}" is in ${hits.length} sessions; pass --session` : `no machine "${name}" in a live session`}. ${have.length ? `Machines: ${have.join(', ')}.` : 'None is live: pause a run (ctx.pause, --debug, --pause-on-failure) or start machines with fleetlab up.'}`,
    { details: { machine: name } },
  );
}

/** The folder `p` resolves to (reports/latest is a link), or `p` when it does not exist. */
function safeReal(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
