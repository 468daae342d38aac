// The fabric's data plane, fleetlab-switch (switch/fleetlab-switch.c): compiled once per source into the cache with the
// host's C compiler, run as a supervised child that dies with the runner, driven by commands on its stdin.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheDir } from '../cache/cache-dir.ts';
import { buildOnce } from '../cache/cached-build.ts';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { sourceDir } from '../package-files.ts';
import { spawnSupervised, type SupervisedProcess } from '../process/supervisor.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import { raceDeadline } from '../time/deadline.ts';

const SOURCE = join(sourceDir(import.meta.url), 'switch', 'fleetlab-switch.c');
const CFLAGS = ['-O2', '-std=gnu11', '-Wall', '-Wextra', '-Werror'];
/** How long the helper may take to answer a command (it answers at once; this bounds a wedged host). */
const ANSWER_MS = 10_000;

/** The compiled switch, built once per source and compiler flags (`cc`, or $CC). */
export async function switchBinary(): Promise<string> {
  const source = readFileSync(SOURCE);
  const cc = process.env.CC || 'cc';
  const key = createHash('sha256').update(source).update(`\0${cc}\0${CFLAGS.join(' ')}`).digest('hex').slice(0, 16);
  const dir = cacheDir(`switch-${key}`);
  await buildOnce(dir, false, async (out) => {
    const r = await execa(cc, [...CFLAGS, '-o', join(out, 'fleetlab-switch'), SOURCE], { reject: false, timeout: 120_000 });
    if ((r as { code?: string }).code === 'ENOENT') {
      throw new ConfigurationError(`fleetlab's network switch (${SOURCE}) is compiled on first use, and there is no C compiler "${cc}" on this host: install one (Debian: apt-get install gcc libc6-dev, which scripts/setup.sh does), or set CC.`);
    }
    if (r.exitCode !== 0) throw new InfrastructureError(`compiling fleetlab's network switch failed (${cc} ${CFLAGS.join(' ')} ${SOURCE}, exit ${r.exitCode}):\n${r.stderr}`);
    return { source: SOURCE, cc };
  });
  return join(dir, 'fleetlab-switch');
}

/** One running fleetlab-switch: commands in, answers out, counters read from its shared file. */
export class SwitchHelper {
  private readonly proc: SupervisedProcess;
  private readonly dir: string;
  private readonly waiting: Array<{ match: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void }> = [];
  private statsFd: number | undefined;
  private final: Buffer | undefined;
  private closing = false;
  /** Resolves when the helper has exited; `unexpected` is false after close(). */
  readonly ended: Promise<{ unexpected: boolean; error: InfrastructureError }>;

  private constructor(proc: SupervisedProcess, dir: string) {
    this.proc = proc;
    this.dir = dir;
    this.ended = proc.exited.then(() => {
      const error = proc.exitError('exited');
      for (const w of this.waiting.splice(0)) w.reject(error);
      return { unexpected: !this.closing, error };
    });
  }

  /** Starts the helper with `setup` (net and nb commands) and waits until its counters file is ready. */
  static async start(setup: string[], onStderr: (line: string) => void): Promise<SwitchHelper> {
    const binary = await switchBinary();
    const dir = await makeTempDir('fleetlab-switch-');
    let helper: SwitchHelper | undefined;
    const proc = spawnSupervised('fleetlab-switch', binary, [], {
      stdinPipe: true,
      onLine: (stream, line) => (stream === 'stdout' ? helper?.answer(line) : onStderr(line)),
    });
    helper = new SwitchHelper(proc, dir);
    const ready = helper.expect(/^ready$/, 'ready');
    helper.send([...setup, `stats ${join(dir, 'counters')}`]);
    try {
      await ready;
    } catch (err) {
      await helper.close();
      throw err;
    }
    helper.statsFd = openSync(join(dir, 'counters'), 'r');
    return helper;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Sends commands; they are in the helper's pipe when this returns. */
  send(lines: string[]): void {
    if (lines.length) this.proc.write(lines.join('\n') + '\n');
  }

  /** Opens `member`'s port on network `net` towards QEMU's `qemuPort`; the switch's own UDP port. */
  async openPort(net: number, member: number, qemuPort: number): Promise<number> {
    const answer = this.expect(new RegExp(`^port ${net} ${member} (\\d+)$`), `port ${net} ${member}`);
    this.send([`port ${net} ${member} ${qemuPort}`]);
    return Number((await answer)[1]);
  }

  /** `count` u64 counters from word `offset` of the shared counters file (their last values once closed). */
  counters(offset: number, count: number): number[] {
    let buf: Buffer = Buffer.alloc(count * 8);
    if (this.statsFd !== undefined) readSync(this.statsFd, buf, 0, buf.length, offset * 8);
    else if (this.final) buf = this.final.subarray(offset * 8, (offset + count) * 8);
    return Array.from({ length: count }, (_, i) => Number(buf.readBigUInt64LE(i * 8)));
  }

  private expect(match: RegExp, what: string): Promise<RegExpMatchArray> {
    const answered = new Promise<RegExpMatchArray>((resolve, reject) => this.waiting.push({ match, resolve, reject }));
    return raceDeadline(answered, ANSWER_MS).then((r) => {
      if (r.timedOut) throw new InfrastructureError(`fleetlab-switch[${this.pid}] did not answer "${what}" within ${ANSWER_MS / 1000} s`);
      return r.value;
    });
  }

  private answer(line: string): void {
    const i = this.waiting.findIndex((w) => w.match.test(line));
    if (i >= 0) {
      const w = this.waiting.splice(i, 1)[0]!;
      w.resolve(line.match(w.match)!);
    }
  }

  /** Ends the helper: end of input makes it write out its captures and exit; SIGTERM, then SIGKILL if it does not. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.proc.endInput();
    const r = await raceDeadline(this.proc.exited, 5000);
    if (r.timedOut) await this.proc.stop(2000);
    if (this.statsFd !== undefined) {
      // What the counters said last stays readable after the file has gone.
      this.final = readFileSync(join(this.dir, 'counters'));
      closeSync(this.statsFd);
      this.statsFd = undefined;
    }
    await removeTempDir(this.dir);
  }
}
