// Shell protocol: run commands on a machine and check their exit codes.
import type { WaitOptions } from './wait-options.ts';

/** What a guest command returned. `stdoutBytes` is exact; `stdout` is its UTF-8 reading. */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  durationMs: number;
  /** The budget that bound the command ("scenario 'x' (20 s)"): with timedOut, the one that ran out. */
  budget?: string;
  /** True when fleetlab killed the command at its timeout (exit code 124); false when the command itself exited so. */
  timedOut?: boolean;
  /** The time the guest gave the command (whole seconds, at least its budget). */
  budgetMs?: number;
}

/**
 * Options of one command: its budget (enforced in the guest: killed with exit code 124 and timedOut when it expires),
 * and whether it runs strictly: under `set -eu` and, where the guest's shell has it (bash, busybox ash; not dash),
 * `set -o pipefail`, as the NixOS test driver runs commands. Default: the profile's `guest.shell.strict`, else true.
 */
export type ExecOptions = WaitOptions & { strict?: boolean };

/** What copyToMachine or copyFromMachine moved. */
export interface CopyReport {
  /** Where it landed: a guest path for copyToMachine, a host path for copyFromMachine. */
  path: string;
  kind: 'file' | 'directory';
  /** Bytes that crossed the channel (a folder's tar stream). */
  bytes: number;
  /** SHA-256 of those bytes, checked on the far side. */
  sha256: string;
}

/** Runs one command and returns its exit code and output: the one primitive a shell provider implements. */
export interface CommandRunner {
  readonly machineName: string;
  execute(command: string, opts?: ExecOptions): Promise<ExecResult>;
}

/** The commands a scenario runs on any machine, VM or board. */
export interface Shell extends CommandRunner {
  /**
   * Runs `command`; throws a CommandError unless it exits 0. Returns stdout. Given several commands (an array, as
   * NTD's `succeed(*cmds)`), runs them in order, each one on its own, stops at the first that fails, and returns
   * their stdout joined.
   */
  succeed(command: string | readonly string[], opts?: ExecOptions): Promise<string>;
  /** Runs `command` (or each of several, in order); throws a CommandError if one exits 0. Returns stdout (joined). */
  fail(command: string | readonly string[], opts?: ExecOptions): Promise<string>;
  /** Retries `command` until it exits 0. Returns its stdout. */
  waitUntilSucceeds(command: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string>;
  /** Retries `command` until it exits non-zero. Returns its stdout. */
  waitUntilFails(command: string, opts?: ExecOptions & { intervalMs?: number }): Promise<string>;
  /** Waits until `path` exists in the guest. */
  waitForFile(path: string, opts?: ExecOptions): Promise<void>;
  /**
   * Waits until something in the guest listens on TCP `port` (its socket tables); with `addr`, until a connection from
   * the guest to `addr`:`port` opens (a peer's port, as the guest reaches it; NTD's wait_for_open_port(port, addr)).
   */
  waitForOpenPort(port: number, opts?: ExecOptions & { addr?: string }): Promise<void>;
  /** Waits until nothing in the guest listens on TCP `port` (NTD's wait_for_closed_port). */
  waitForClosedPort(port: number, opts?: ExecOptions): Promise<void>;
  /**
   * Waits until a unix socket is bound at `path` in the guest: a listening stream socket, or with `datagram` a
   * datagram socket (NTD's wait_for_open_unix_socket).
   */
  waitForUnixSocket(path: string, opts?: ExecOptions & { datagram?: boolean }): Promise<void>;
}
