// A U-Boot (or barebox-style) boot-loader console driver over any machine's boot-loader console: interrupt the
// autoboot countdown, run commands at the prompt with deadlines and their exit status, and boot a chosen entry of
// the extlinux menu U-Boot's distro boot prints. What an engineer at the serial console does to recover a board
// whose new generation does not boot, as scenario code (scenarios/boot-loader-recovery.ts).
import { randomBytes } from 'node:crypto';
import { ConfigurationError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import type { Console } from '../protocols/console.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom } from '../time/deadline.ts';
import { escapeRegExp } from './stream-console.ts';

/** What a machine offers the driver: its consoles and its profile's choice of the boot loader's. */
export interface BootLoaderMachine {
  readonly name: string;
  readonly profile: { serialConsole: string; bootloaderConsole?: string };
  console(name?: string): Console;
}

export interface UBootOptions {
  /** The boot loader's prompt at the output's end (default U-Boot's `=> `; barebox: /barebox@[^:]*:\S* *$/). */
  prompt?: RegExp;
  /** The autoboot countdown to interrupt (default U-Boot's and barebox's wordings). */
  autoboot?: RegExp;
  /** What interrupts it (default a space; some builds want Ctrl-C: '\x03'). */
  key?: string;
}

/** A command's result at the prompt: what it printed and its exit status (U-Boot's `$?`). */
export interface UBootResult {
  command: string;
  output: string;
  exitCode: number;
}

/** One line of U-Boot's extlinux menu: "2:\tNixOS - Configuration 1 (…)". */
export interface MenuEntry {
  choice: number;
  title: string;
}

const AUTOBOOT = /Hit any key to stop autoboot|Press SPACE to abort autoboot|autoboot in \d+ seconds?/;

export class UBootConsole {
  readonly console: Console;
  private readonly machine: string;
  private readonly prompt: RegExp;
  private readonly autoboot: RegExp;
  private readonly key: string;

  constructor(console: Console, machine: string, opts: UBootOptions = {}) {
    this.console = console;
    this.machine = machine;
    // Keys sent while the prompt was being printed are typed after it: "=>   ".
    this.prompt = opts.prompt ?? /=> *$/;
    this.autoboot = opts.autoboot ?? AUTOBOOT;
    this.key = opts.key ?? ' ';
  }

  /**
   * Waits for the autoboot countdown (call it as the machine powers on or resets) and interrupts it, then waits for
   * the prompt. Keys are sent every half second until the prompt answers, as a hand on the keyboard would.
   */
  async interrupt(opts?: WaitOptions): Promise<void> {
    const deadline = deadlineFrom(opts, 120_000, `${this.machine}'s boot loader to offer its autoboot countdown`, 'pass { timeout } to interrupt()');
    await this.console.expect(this.autoboot, { deadline, signal: opts?.signal });
    for (;;) {
      await this.console.write(this.key);
      try {
        await this.console.expect(this.prompt, { timeout: 500, quietMs: 100, signal: opts?.signal });
        return;
      } catch (err) {
        if (!(err instanceof TimeoutError) || deadline.expired()) throw err instanceof TimeoutError ? new TimeoutError('test-failure', { awaited: `${this.machine}'s boot loader prompt after interrupting autoboot`, deadline, machine: this.machine, lastLines: this.console.lastLines(20) }) : err;
      }
    }
  }

  /** Runs `command` at the prompt (after interrupt()) and waits for the next prompt; its output and exit status. */
  async run(command: string, opts?: WaitOptions): Promise<UBootResult> {
    if (/[\r\n]/.test(command)) throw new ConfigurationError(`U-Boot command on ${this.machine}: one line, got ${JSON.stringify(command)}`);
    const deadline = deadlineFrom(opts, 60_000, `U-Boot command on ${this.machine}: ${command}`, 'pass { timeout } to run()');
    const tag = `FLRC${randomBytes(3).toString('hex')}`;
    // Echoed back as typed ("…; echo TAG=$?"), then the output, then "TAG=<status>" on a line of its own.
    await this.console.write(`${command}; echo ${tag}=$?\n`);
    try {
      const m = await this.console.expect(new RegExp(`${escapeRegExp(tag)}=\\$\\?\\r?\\n((?:[\\s\\S]*?\\n)?)${escapeRegExp(tag)}=(\\d+)\\r?\\n`), { deadline, signal: opts?.signal });
      await this.console.expect(this.prompt, { deadline, signal: opts?.signal, quietMs: 50 });
      return { command, output: m[1]!.replace(/\r/g, '').replace(/\n$/, ''), exitCode: Number(m[2]) };
    } catch (err) {
      if (err instanceof TimeoutError) throw new TimeoutError('test-failure', { awaited: `U-Boot command on ${this.machine} to finish: ${command}`, deadline, machine: this.machine, lastLines: this.console.lastLines(20) });
      throw err;
    }
  }

  /** run(), and a TestFailure naming the command, its status and output unless it exits 0. */
  async succeed(command: string, opts?: WaitOptions): Promise<string> {
    const r = await this.run(command, opts);
    if (r.exitCode !== 0) throw new TestFailure(`U-Boot command on ${this.machine} failed with status ${r.exitCode}:\n  => ${command}\n${r.output ? r.output.split('\n').map((l) => `  | ${l}`).join('\n') : 'It printed nothing.'}`);
    return r.output;
  }

  /**
   * Boots an entry of the extlinux menu: runs `command` (default `boot`: the board's bootcmd, U-Boot's distro boot),
   * waits for the menu and its "Enter choice:", and types the number of the first entry whose title matches `entry`
   * (a RegExp, or text it contains), or `entry` itself when it is a number. Resolves with the chosen entry once typed.
   */
  async bootMenuEntry(entry: RegExp | string | number, opts?: WaitOptions & { command?: string }): Promise<MenuEntry> {
    const deadline = deadlineFrom(opts, 120_000, `${this.machine}'s extlinux menu`, 'pass { timeout } to bootMenuEntry()');
    await this.console.write(`${opts?.command ?? 'boot'}\n`);
    let m: RegExpExecArray;
    try {
      m = await this.console.expect(/((?:^|\n)\d+:\t[^\r\n]*\r?\n(?:\d+:\t[^\r\n]*\r?\n)*)[\s\S]*?Enter choice: ?/, { deadline, signal: opts?.signal });
    } catch (err) {
      if (err instanceof TimeoutError) throw new TimeoutError('test-failure', { awaited: `${this.machine}'s extlinux menu ("Enter choice:") after "${opts?.command ?? 'boot'}"`, deadline, machine: this.machine, lastLines: this.console.lastLines(20) });
      throw err;
    }
    const menu = [...m[1]!.matchAll(/(\d+):\t([^\r\n]*)/g)].map((x) => ({ choice: Number(x[1]), title: x[2]!.trim() }));
    const chosen = typeof entry === 'number' ? menu.find((e) => e.choice === entry) : menu.find((e) => (typeof entry === 'string' ? e.title.includes(entry) : entry.test(e.title)));
    if (!chosen) throw new TestFailure(`${this.machine}'s extlinux menu has no entry ${typeof entry === 'number' ? entry : `matching ${String(entry)}`}; it offers:\n${menu.map((e) => `  ${e.choice}: ${e.title}`).join('\n')}`);
    await this.console.write(`${chosen.choice}\n`);
    return chosen;
  }
}

/** The driver on a machine's boot-loader console (the profile's bootloaderConsole, else its serial console). */
export function uboot(machine: BootLoaderMachine, opts?: UBootOptions): UBootConsole {
  return new UBootConsole(machine.console(machine.profile.bootloaderConsole ?? machine.profile.serialConsole), machine.name, opts);
}
