// ssh() with a pinned host key, written once for VMs and boards: the first session pins the key the server presents
// (or the one fleetlab already knows, such as the testbed's), a later one fails on a different key unless
// expectNewHostKey (a reinstall) re-pins it; sessions are bound to the machine's life and closed with it.
import { readFile } from 'node:fs/promises';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { SshOptions } from '../protocols/machine.ts';
import { deadlineFrom } from '../time/deadline.ts';
import { type Lifeline, withLife } from '../time/lifeline.ts';
import { lifeBoundShell, SshSession, type SshShell } from './ssh-session.ts';

/** Where a session goes: the server, and the user, key and host key fleetlab knows for it. */
export interface SshTargetDefaults {
  host: string;
  port: number;
  user: string;
  /** The key the machine accepts, when fleetlab knows one (the testbed's, the lab file's). */
  privateKey?: string | Buffer;
  /** The host key fleetlab knows before any session (the testbed's). */
  knownHostKey?: string;
}

/** The machine the sessions are of: its name in the scenario (and the server's, a board's, in SSH messages), its log and life. */
export interface SshMachine {
  readonly name: string;
  /** How SSH's own messages name it ("the SSH host key of vboard-1 changed"); default: name. */
  readonly serverName?: string;
  note(line: string): void;
  life(): Lifeline;
}

export class SshAccess {
  private pinned: string | undefined;
  private readonly sessions = new Set<SshSession>();
  private readonly machine: SshMachine;

  constructor(machine: SshMachine) {
    this.machine = machine;
  }

  /** The host key in force: the one pinned by a session, else the one known beforehand. */
  hostKey(known?: string): string | undefined {
    return this.pinned ?? known;
  }

  /**
   * A session to `to` with the shell helpers, transfers and forwards, retried until the server answers within the
   * timeout and the machine's life. `noKey` is the configuration error's text when no private key is known or given.
   */
  async open(to: SshTargetDefaults, opts: SshOptions, what: { label: string; noKey: string }): Promise<SshShell> {
    const key = opts.privateKey ?? to.privateKey;
    if (!key) throw new ConfigurationError(what.noKey);
    const deadline = deadlineFrom(opts, 120_000, `SSH to ${what.label}`, 'pass { timeout } to ssh()');
    const life = this.machine.life();
    const session = await SshSession.connect(
      { machine: this.machine.serverName ?? this.machine.name, host: to.host, port: to.port, user: opts.user ?? to.user, privateKey: Buffer.isBuffer(key) ? key : await readFile(key), hostKey: opts.expectNewHostKey ? undefined : this.hostKey(to.knownHostKey) },
      { deadline, signal: withLife(opts.signal, life) },
    );
    if (!this.pinned || opts.expectNewHostKey) {
      this.pinned = session.hostKey;
      this.machine.note(`ssh: host key of ${this.machine.name} is ${session.hostKey.slice(0, 40)}…`);
    }
    this.sessions.add(session);
    return lifeBoundShell(session, this.machine.name, life);
  }

  /** Closes every session (the machine stops). */
  closeAll(): void {
    for (const s of this.sessions) s.close();
    this.sessions.clear();
  }
}
