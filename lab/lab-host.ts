// A lab host: a small machine on a shelf (a Pi, a NUC) that the lab's boards hang off, reached with OpenSSH. Host-side
// commands (power commands, gpioset, usbrelay) run over one SSH connection per host and process (ssh2, multiplexed
// channels), opened on first use; a connection that drops is opened again on the next use, so a host that comes back
// is used again without restarting anything. Its serial lines are exported by ser2net (serial: { rfc2217 | tcp }).
import { readFileSync } from 'node:fs';
import { InfrastructureError } from '../harness/errors/fleetlab-error.ts';
import type { ExecResult } from '../harness/protocols/shell.ts';
import { SshSession } from '../harness/ssh/ssh-session.ts';
import { Deadline } from '../harness/time/deadline.ts';
import type { HostSpec } from './inventory.ts';

const CONNECT_MS = 15_000;

export class LabHost {
  readonly name: string;
  readonly spec: HostSpec;
  readonly user: string;
  readonly address: string;
  private session: Promise<SshSession> | undefined;

  constructor(name: string, spec: HostSpec) {
    this.name = name;
    this.spec = spec;
    [this.user, this.address] = spec.ssh.split('@') as [string, string];
  }

  /** "lab host shelf1 (lab@10.0.0.5:22)": how messages name it. */
  get describe(): string {
    return `lab host ${this.name} (${this.user}@${this.address}:${this.spec.port})`;
  }

  private connect(): Promise<SshSession> {
    if (!this.session) {
      const s = SshSession.connect(
        { machine: this.describe, host: this.address, port: this.spec.port, user: this.user, privateKey: readFileSync(this.spec.privateKey), hostKey: this.spec.hostKey },
        { deadline: Deadline.after(CONNECT_MS, `an SSH connection to ${this.describe}`, { unscaled: true }) },
      );
      this.session = s;
      s.then(
        (session) => session.onClose(() => this.session === s && (this.session = undefined)),
        () => this.session === s && (this.session = undefined),
      );
    }
    return this.session;
  }

  /**
   * Runs `command` on the host (its user's shell), with `input()`'s stream on its stdin if given. A connection found
   * dropped is opened again once; a failure to connect or a connection lost mid-command is an InfrastructureError
   * naming the host and `what`.
   */
  async exec(command: string, opts: { timeoutMs: number; what: string; input?: () => NodeJS.ReadableStream }): Promise<ExecResult> {
    for (let attempt = 1; ; attempt++) {
      let session: SshSession;
      try {
        session = await this.connect();
      } catch (err) {
        throw new InfrastructureError(`${this.describe}: ${opts.what}: cannot connect: ${(err as Error).message}`, { cause: err, details: { host: this.name } });
      }
      try {
        return await session.execute(command, { timeout: opts.timeoutMs }, opts.input?.());
      } catch (err) {
        const lost = (err as { details?: { connectionLost?: boolean } }).details?.connectionLost || /not connected|No response from server|closed/i.test((err as Error).message);
        if (lost) this.session = undefined;
        if (lost && attempt === 1 && !/closed before the command reported/.test((err as Error).message)) continue;
        throw new InfrastructureError(`${this.describe}: ${opts.what}: ${(err as Error).message}`, { cause: err, details: { host: this.name } });
      }
    }
  }

  close(): void {
    void this.session?.then((s) => s.close(), () => undefined);
    this.session = undefined;
  }
}
