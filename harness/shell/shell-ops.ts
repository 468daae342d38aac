// succeed, fail, waitUntil* and friends, built once on any CommandRunner (VM backdoor, serial shell, SSH).
import { CommandError, ConfigurationError, TimeoutError } from '../errors/fleetlab-error.ts';
import type { CommandRunner, ExecOptions, ExecResult, Shell } from '../protocols/shell.ts';
import { deadlineFrom, pollUntil } from '../time/deadline.ts';
import { abbreviate } from './backdoor-shell.ts';
import { shellQuote } from './guest-helper.ts';

/** A command that exits 0 when something listens on TCP `port`: it reads the kernel's socket tables (no nc or ss needed in the guest; state 0A is LISTEN). */
function listening(port: number): string {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return `grep -qE '^ *[0-9]+: [0-9A-F]+:${hex} [0-9A-F]+:[0-9A-F]+ 0A ' /proc/net/tcp /proc/net/tcp6`;
}

/**
 * A command that exits 0 when a TCP connection to `addr`:`port` opens, made from inside the guest (so a peer's port on
 * the scenario's networks is reachable as the guest reaches it): OpenBSD nc's `-z` where the guest has it, else
 * busybox nc, which has no `-z`, connecting and running `true` at once (`-e`).
 */
function connects(addr: string, port: number): string {
  const a = shellQuote(addr);
  return `command -v nc >/dev/null || { echo 'the guest has no nc' >&2; exit 127; }; if nc -h 2>&1 | grep -q -- ' -z'; then nc -z -w 2 ${a} ${port}; else nc -w 2 ${a} ${port} -e true; fi`;
}

/** Wraps a CommandRunner into the full Shell protocol. `lastLines` feeds timeout messages. */
export class ShellOps implements Shell {
  private readonly runner: CommandRunner;
  /** The machine's last console lines, for timeout messages. */
  readonly lastLines: () => string[];

  constructor(runner: CommandRunner, lastLines: () => string[] = () => []) {
    this.runner = runner;
    this.lastLines = lastLines;
  }

  get machineName(): string {
    return this.runner.machineName;
  }

  execute(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.runner.execute(command, opts);
  }

  async succeed(command: string | readonly string[], opts?: ExecOptions): Promise<string> {
    let out = '';
    for (const c of typeof command === 'string' ? [command] : command) {
      const r = await this.runner.execute(c, opts);
      if (r.exitCode !== 0) throw this.commandError(c, r, 'was expected to succeed');
      out += r.stdout;
    }
    return out;
  }

  async fail(command: string | readonly string[], opts?: ExecOptions): Promise<string> {
    let out = '';
    for (const c of typeof command === 'string' ? [command] : command) {
      const r = await this.runner.execute(c, opts);
      if (r.exitCode === 0) throw this.commandError(c, r, 'was expected to fail');
      out += r.stdout;
    }
    return out;
  }

  waitUntilSucceeds(command: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string> {
    return this.retry(command, (r) => r.exitCode === 0, `\`${abbreviate(command)}\` to succeed`, opts);
  }

  waitUntilFails(command: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string> {
    return this.retry(command, (r) => r.exitCode !== 0, `\`${abbreviate(command)}\` to fail`, opts);
  }

  async waitForFile(path: string, opts?: ExecOptions): Promise<void> {
    await this.retry(`test -e ${shellQuote(path)}`, (r) => r.exitCode === 0, `file ${path} to exist`, opts);
  }

  async waitForOpenPort(port: number, opts?: ExecOptions & { addr?: string }): Promise<void> {
    if (opts?.addr) await this.retry(connects(opts.addr, port), (r) => r.exitCode === 0, `TCP port ${port} on ${opts.addr} to accept a connection from ${this.machineName}`, { ...opts, strict: false });
    else await this.retry(listening(port), (r) => r.exitCode === 0, `TCP port ${port} to be listened on`, opts);
  }

  async waitForClosedPort(port: number, opts?: ExecOptions): Promise<void> {
    await this.retry(listening(port), (r) => r.exitCode !== 0, `TCP port ${port} to be closed (nothing listening on it)`, opts);
  }

  async waitForUnixSocket(path: string, opts?: ExecOptions & { datagram?: boolean }): Promise<void> {
    // The kernel's table of unix sockets, as for ports: a listening stream socket has type 0001 and the flag
    // __SO_ACCEPTCON (00010000); a bound datagram socket has type 0002. The path is the last field.
    const match = opts?.datagram ? '$5 == "0002"' : '$5 == "0001" && $4 == "00010000"';
    const cmd = `awk -v p=${shellQuote(path)} '${match} && $NF == p { found = 1 } END { exit !found }' /proc/net/unix`;
    await this.retry(cmd, (r) => r.exitCode === 0, `a ${opts?.datagram ? 'datagram' : 'listening stream'} unix socket at ${path}`, opts);
  }

  private async retry(command: string, done: (r: ExecResult) => boolean, awaited: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string> {
    const deadline = deadlineFrom(opts, 900_000, `wait for ${awaited} on ${this.machineName}`, 'pass { timeout } to the wait');
    let last: ExecResult | undefined;
    const res = await pollUntil(
      async () => {
        const r = await this.runner.execute(command, { deadline, signal: opts?.signal, strict: opts?.strict });
        last = r;
        return done(r) ? r.stdout : undefined;
      },
      { deadline, intervalMs: opts?.intervalMs ?? 500, signal: opts?.signal, awaited },
    );
    if (!res.timedOut) return res.value;
    const lastRun = last ? `last try exited ${last.exitCode}${last.stdout || last.stderr ? `, output: ${abbreviate((last.stdout + last.stderr).trim(), 300)}` : ''}` : 'it never ran';
    throw new TimeoutError('test-failure', { awaited: `${awaited} (${lastRun})`, deadline, machine: this.machineName, lastLines: this.lastLines() });
  }

  private commandError(command: string, r: ExecResult, expected: string): CommandError {
    return new CommandError({ machine: this.machineName, command, exitCode: r.exitCode, durationMs: r.durationMs, output: r.stdout + r.stderr, expected, budget: r.budget, timedOut: r.timedOut, budgetMs: r.budgetMs });
  }
}

/** The command runner of a machine without a shell channel: every command is a configuration error saying `why`. */
export function noShell(machine: string, why: string): CommandRunner {
  return {
    machineName: machine,
    execute(): Promise<ExecResult> {
      return Promise.reject(new ConfigurationError(`machine ${machine} has no shell channel (${why})`));
    },
  };
}
