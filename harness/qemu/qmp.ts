// QMP client: handshake, commands with ids, events; errors carry QMP's class and description.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import { connectUnix } from '../process/unix-socket.ts';
import type { Deadline } from '../time/deadline.ts';

/** A QMP event as QEMU sends it. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** A QMP command that QEMU answered with an error. */
export class QmpCommandError extends InfrastructureError {
  readonly errorClass: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP command ${command} failed: ${errorClass}: ${desc}`, { details: { command, errorClass, desc } });
    this.errorClass = errorClass;
  }
}

type Pending = { command: string; resolve: (v: unknown) => void; reject: (e: Error) => void };

/** One QMP connection over a unix socket. Emits 'event' (QmpEvent) and 'close'. */
export class QmpClient extends EventEmitter {
  private socket: Socket | undefined;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greeting: ((v: unknown) => void) | undefined;
  private closed = false;
  /** QEMU's version from the greeting: "7.2.22". */
  version = '';

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(path: string, opts: { deadline: Deadline; signal?: AbortSignal }): Promise<QmpClient> {
    const client = new QmpClient();
    await client.open(path, await connectUnix(path, opts.deadline, opts.signal), opts.signal);
    return client;
  }

  private open(path: string, sock: Socket, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket = sock;
      sock.setEncoding('utf8');
      const fail = (err: Error) => {
        cleanup();
        sock.destroy();
        reject(err);
      };
      const onAbort = () => fail(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      const onError = (err: Error) => fail(new InfrastructureError(`QMP socket ${path} failed before QEMU greeted: ${err.message}`, { cause: err }));
      const cleanup = () => {
        signal?.removeEventListener('abort', onAbort);
        sock.off('error', onError);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      sock.once('error', onError);
      sock.on('data', (chunk: string) => this.onData(chunk));
      sock.on('close', () => this.onClose());
      sock.on('error', () => undefined);
      this.greeting = (greet) => {
        const v = (greet as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } }).QMP?.version?.qemu;
        if (v) this.version = `${v.major}.${v.minor}.${v.micro}`;
        this.execute('qmp_capabilities').then(
          () => {
            cleanup();
            resolve();
          },
          (err: Error) => fail(err),
        );
      };
    });
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if ('QMP' in msg) {
        this.greeting?.(msg);
        this.greeting = undefined;
      } else if ('event' in msg) {
        this.emit('event', msg as unknown as QmpEvent);
      } else if ('id' in msg) {
        const p = this.pending.get(String(msg.id));
        if (!p) continue;
        this.pending.delete(String(msg.id));
        if ('error' in msg) {
          const e = msg.error as { class?: string; desc?: string };
          p.reject(new QmpCommandError(p.command, e.class ?? 'GenericError', e.desc ?? ''));
        } else p.resolve(msg.return);
      }
    }
  }

  private onClose(): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new InfrastructureError(`QMP connection closed while ${p.command} was pending (QEMU exited?)`));
    this.pending.clear();
    this.emit('close');
  }

  /** True once the connection has closed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs a QMP command and resolves with its return value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed || !this.socket) return Promise.reject(new InfrastructureError(`QMP connection is closed; cannot run ${command} (QEMU exited?)`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket!.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  /** Human monitor command through QMP. */
  hmp(commandLine: string): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine });
  }

  /** Closes the connection. */
  close(): void {
    this.socket?.destroy();
  }
}
