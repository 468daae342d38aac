// SSH into a machine with the ssh2 library: commands with exit codes, file transfer, port forwarding, pinned host keys.
import { createServer, type Server } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { InfrastructureError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import type { CommandRunner, ExecOptions, ExecResult } from '../protocols/shell.ts';
import { deadlineFrom, now, raceDeadline, sleep, type Deadline } from '../time/deadline.ts';
import { abortError, withLife, type Lifeline } from '../time/lifeline.ts';
import { abbreviate } from '../shell/backdoor-shell.ts';
import { shellQuote } from '../shell/guest-helper.ts';
import { ShellOps } from '../shell/shell-ops.ts';

/** Where and as whom to connect. */
export interface SshTarget {
  machine: string;
  host: string;
  port: number;
  user: string;
  privateKey: Buffer;
  /** "ssh-ed25519 AAAA…": the key the server must present; undefined trusts the first one seen (and reports it). */
  hostKey?: string;
}

/** A forwarded port: connections to 127.0.0.1:port reach the guest's port. */
export interface Forward {
  port: number;
  close(): Promise<void>;
}

const ATTEMPT_MS = 5000;

/** The wire-format key blob of "type base64 [comment]". */
function keyBlob(line: string): Buffer {
  return Buffer.from(line.trim().split(/\s+/)[1] ?? '', 'base64');
}

/** One SSH connection; a CommandRunner, so ShellOps gives it succeed(), waitUntilSucceeds() and the rest. */
export class SshSession implements CommandRunner {
  readonly machineName: string;
  /** The host key the server presented, "ssh-ed25519 AAAA…". */
  readonly hostKey: string;
  private readonly client: Client;
  private sftpState: Promise<SFTPWrapper | undefined> | undefined;
  private readonly forwards = new Set<Server>();

  private constructor(machine: string, client: Client, hostKey: string) {
    this.machineName = machine;
    this.client = client;
    this.hostKey = hostKey;
  }

  /**
   * Connects, retrying refused or silent attempts (QEMU's user networking accepts before the guest's server listens)
   * until the deadline. A host key other than the pinned one fails at once: nothing is retried or sent.
   */
  static async connect(target: SshTarget, opts: { deadline: Deadline; signal?: AbortSignal }): Promise<SshSession> {
    let last = 'no attempt';
    for (;;) {
      if (opts.signal?.aborted) throw abortError(opts.signal, `SSH to ${target.machine}`);
      let seen: Buffer | undefined;
      const client = new Client();
      const attempt = new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        // on, not once: ssh2 can emit more than one error, and an 'error' with no listener would end the process.
        client.on('error', reject);
        client.once('close', () => reject(new Error('connection closed before it was ready')));
      });
      client.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey: target.privateKey,
        readyTimeout: Math.min(ATTEMPT_MS, Math.max(1000, opts.deadline.remaining())),
        hostVerifier: (key: Buffer) => {
          seen = key;
          return !target.hostKey || key.equals(keyBlob(target.hostKey));
        },
      });
      const onAbort = () => client.destroy();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await attempt;
        // Commands are small requests awaiting small answers: Nagle's algorithm against delayed ACKs would add ~40 ms
        // to each round trip (measured: 170 ms an exec against a local server, 2 ms with no delay on both ends).
        client.setNoDelay(true);
        const algo = seen ? seen.subarray(4, 4 + seen.readUInt32BE(0)).toString() : 'unknown';
        return new SshSession(target.machine, client, `${algo} ${seen?.toString('base64') ?? ''}`);
      } catch (err) {
        client.destroy();
        if (opts.signal?.aborted) throw abortError(opts.signal, `SSH to ${target.machine}`);
        if (seen && target.hostKey && !seen.equals(keyBlob(target.hostKey))) {
          throw new TestFailure(
            `The SSH host key of ${target.machine} changed: expected ${abbreviate(target.hostKey, 60)}, the server presented ${abbreviate(seen.toString('base64'), 50)}. ` +
              'If the scenario replaced it on purpose (a reinstall), pass { expectNewHostKey: true } to ssh().',
            { details: { machine: target.machine, expected: target.hostKey, presented: seen.toString('base64') } },
          );
        }
        last = (err as Error).message;
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
      if (opts.deadline.expired()) {
        throw new TimeoutError('infrastructure', { awaited: `an SSH session with ${target.user}@${target.host}:${target.port} (${target.machine}); last attempt: ${last}`, deadline: opts.deadline, machine: target.machine });
      }
      await sleep(300, { deadline: opts.deadline, signal: opts.signal, awaited: `SSH to ${target.machine}` });
    }
  }

  /** Calls `fn` once the connection closes (dropped by the network or the server, or close()). */
  onClose(fn: () => void): void {
    this.client.once('close', fn);
  }

  /**
   * Runs `command` through the user's shell; the exit code, stdout and stderr as the shell channel gives them.
   * `input`, if given, is streamed to the command's stdin (then closed).
   */
  async execute(command: string, opts?: ExecOptions, input?: NodeJS.ReadableStream): Promise<ExecResult> {
    const deadline = deadlineFrom(opts, 900_000, `SSH command on ${this.machineName}: ${abbreviate(command)}`, 'pass { timeout } to execute()');
    const t0 = now();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const { stream, done } = await this.channel(command, (s) => {
      s.on('data', (d: Buffer) => out.push(d));
      s.stderr.on('data', (d: Buffer) => err.push(d));
      if (input) input.pipe(s);
    });
    const r = await this.bounded(done, deadline, opts?.signal, `SSH command ${abbreviate(command)}`, () => stream.close());
    if (r.code === null && !r.signal) {
      throw new InfrastructureError(`The SSH connection to ${this.machineName} closed before the command reported an exit status: ${abbreviate(command)}`, {
        details: { machine: this.machineName, command, connectionLost: true },
      });
    }
    const stdoutBytes = Buffer.concat(out);
    return {
      exitCode: r.code ?? (r.signal ? 128 : 255),
      stdoutBytes,
      stdout: stdoutBytes.toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
      durationMs: now() - t0,
      budget: deadline.describe(),
      timedOut: false,
    };
  }

  /** Copies a host file to the guest: SFTP where the server has it, else `cat >` over an exec channel. */
  async upload(local: string, remote: string, opts?: ExecOptions): Promise<void> {
    const data = await readFile(local);
    const sftp = await this.sftp();
    if (sftp) {
      await new Promise<void>((resolve, reject) => sftp.writeFile(remote, data, (e) => (e ? reject(e) : resolve())));
      return;
    }
    const deadline = deadlineFrom(opts, 300_000, `upload of ${local} to ${this.machineName}:${remote}`, 'pass { timeout } to upload()');
    // A channel closes only once its output has been read, even when there is none.
    const { stream, done } = await this.channel(`cat > ${shellQuote(remote)}`, (s) => {
      s.resume();
      s.stderr.resume();
    });
    stream.end(data);
    const { code } = await this.bounded(done, deadline, opts?.signal, `upload to ${remote}`, () => stream.close());
    if (code !== 0) throw new InfrastructureError(`upload of ${local} to ${this.machineName}:${remote} failed (cat exited ${code})`);
  }

  /** Copies a guest file to the host. */
  async download(remote: string, local: string, opts?: ExecOptions): Promise<void> {
    const sftp = await this.sftp();
    if (sftp) {
      const data = await new Promise<Buffer>((resolve, reject) => sftp.readFile(remote, (e, d) => (e ? reject(e) : resolve(d))));
      await writeFile(local, data);
      return;
    }
    const r = await this.execute(`cat ${shellQuote(remote)}`, opts);
    if (r.exitCode !== 0) throw new InfrastructureError(`download of ${this.machineName}:${remote} failed: ${r.stderr.trim() || `cat exited ${r.exitCode}`}`);
    await writeFile(local, r.stdoutBytes);
  }

  /** Forwards 127.0.0.1:<a free port> on the host to `remotePort` on the guest's loopback. */
  async forward(remotePort: number, remoteHost = '127.0.0.1'): Promise<Forward> {
    const server = createServer((sock) => {
      this.client.forwardOut('127.0.0.1', sock.remotePort ?? 0, remoteHost, remotePort, (err, stream) => {
        if (err) return sock.destroy();
        sock.pipe(stream).pipe(sock);
        sock.on('close', () => stream.close());
        stream.on('close', () => sock.destroy());
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.forwards.add(server);
    const port = (server.address() as { port: number }).port;
    return {
      port,
      close: () => {
        this.forwards.delete(server);
        return new Promise((resolve) => server.close(() => resolve()));
      },
    };
  }

  /** Closes the connection and every forward. */
  close(): void {
    for (const s of this.forwards) s.close();
    this.forwards.clear();
    this.client.end();
  }

  /**
   * An exec channel for `command`, with its exit status and end as `done`. The listeners (`attach`'s among them) are
   * added in ssh2's callback, not after an await: a short command's data, exit status and close can come in the same
   * read as the exec's reply, and ssh2 emits 'exit' at once, with no listener after an await to hear it.
   */
  private channel(command: string, attach: (stream: ClientChannel) => void): Promise<{ stream: ClientChannel; done: Promise<{ code: number | null; signal?: string }> }> {
    return new Promise((resolve, reject) =>
      this.client.exec(command, (err, stream) => {
        if (err) return reject(new InfrastructureError(`SSH exec on ${this.machineName} failed: ${err.message}`));
        attach(stream);
        const done = new Promise<{ code: number | null; signal?: string }>((res) => {
          let code: number | null = null;
          let signal: string | undefined;
          stream.on('exit', (c: number | null, s?: string) => {
            code = c;
            signal = s;
          });
          stream.on('close', () => res({ code, signal }));
        });
        resolve({ stream, done });
      }),
    );
  }

  private sftp(): Promise<SFTPWrapper | undefined> {
    this.sftpState ??= new Promise((resolve) => this.client.sftp((err, sftp) => resolve(err ? undefined : sftp)));
    return this.sftpState;
  }

  /** `work` within the deadline and the signal (the machine's life among it); `cancel` closes the channel when not. */
  private async bounded<T>(work: Promise<T>, deadline: Deadline, signal: AbortSignal | undefined, awaited: string, cancel: () => void): Promise<T> {
    const r = await raceDeadline(work, deadline, signal, awaited).catch((err: unknown) => {
      cancel();
      throw err;
    });
    if (!r.timedOut) return r.value;
    cancel();
    throw new TimeoutError('test-failure', { awaited, deadline, machine: this.machineName });
  }
}

/** An SSH session with the Shell helpers (succeed, fail, waitUntilSucceeds, ...) on top. */
export class SshShell extends ShellOps {
  readonly session: SshSession;
  constructor(session: SshSession, runner: CommandRunner) {
    super(runner);
    this.session = session;
  }
  get hostKey(): string {
    return this.session.hostKey;
  }
  upload(local: string, remote: string, opts?: ExecOptions): Promise<void> {
    return this.session.upload(local, remote, opts);
  }
  download(remote: string, local: string, opts?: ExecOptions): Promise<void> {
    return this.session.download(remote, local, opts);
  }
  forward(remotePort: number, remoteHost?: string): Promise<Forward> {
    return this.session.forward(remotePort, remoteHost);
  }
  close(): void {
    this.session.close();
  }
}

/**
 * An SshShell over `session` bound to a machine's life: each command races it, and a lost connection is the
 * machine's death when that is what happened (its end is seen up to 2 s later), else an infrastructure error.
 */
export function lifeBoundShell(session: SshSession, machineName: string, life: Lifeline): SshShell {
  const runner: CommandRunner = {
    machineName,
    execute: async (command: string, o?: ExecOptions) => {
      try {
        return await session.execute(command, { ...o, signal: withLife(o?.signal, life) });
      } catch (err) {
        if (err instanceof InfrastructureError && err.details.connectionLost) {
          await raceDeadline(new Promise((r) => (life.ended ? r(undefined) : life.signal.addEventListener('abort', r, { once: true }))), 2000);
          if (life.ended) throw life.reason!.during(`SSH command ${abbreviate(command)}`);
        }
        throw err;
      }
    },
  };
  return new SshShell(session, runner);
}
