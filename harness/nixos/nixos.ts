// machine.nixos: NixOS generations, updates and rollbacks, written against real NixOS commands and layouts
// (nixos-rebuild, nix-env profiles, switch-to-configuration, systemd-boot/GRUB/extlinux files, EFI variables), so a
// scenario runs unchanged on a real NixOS image; the testbed provides the same commands as stand-ins.
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestFailure, ConfigurationError, InfrastructureError, TimeoutError } from '../errors/fleetlab-error.ts';
import { SYSTEM_PROFILE as PROFILE, type NixosMachine } from './nixos-machine.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';
import { testbedSource } from '../qemu/testbed-source.ts';
import { shellQuote } from '../shell/guest-helper.ts';
import { deadlineFrom, raceDeadline, sleep } from '../time/deadline.ts';
import { spawnSupervised } from '../process/supervisor.ts';
import { abortError } from '../time/lifeline.ts';
import { chrootStore, hostNix, nixEnv, registerClosure, registration, STORE_PATH } from './nix-store.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { type GenerationSpec, rememberClosure, type Toplevel } from './generation.ts';
import { bootLoader, extlinuxEntry, LOADER_GUID, writeGrubenv, type BootState, type Bootloader, type LoaderContext } from './boot-loaders.ts';
import { plain, type Commands } from '../shell/plain.ts';
import { fleetlabSetting, switchWithMagicRollback, underSystemdRun, type MagicRollbackOptions, type MagicRollbackResult } from './magic-rollback.ts';

export type { BootState, Bootloader } from './boot-loaders.ts';
export type { MagicRollbackOptions, MagicRollbackResult } from './magic-rollback.ts';

/** One generation as `nixos-rebuild list-generations --json` reports it (nixpkgs' field names). */
export interface Generation {
  generation: number;
  date: string;
  nixosVersion: string;
  kernelVersion: string;
  configurationRevision: string;
  specialisations: string[];
  current: boolean;
}

/** What switch-to-configuration said. Exit code 4 is "switched, but units failed": not success. */
export interface ActivationResult {
  action: SwitchAction;
  exitCode: number;
  ok: boolean;
  /** Units named by "warning: the following units failed: ...". */
  failedUnits: string[];
  stdout: string;
  stderr: string;
}

/** How copyClosure() moves a closure: nix copy over SSH, a tar stream through the shell channel, or nix when it can. */
export type CopyVia = 'auto' | 'nix' | 'ssh' | 'shell';

export interface CopyOptions extends WaitOptions {
  /**
   * Default auto: nix when the host and the machine have Nix and the machine has an SSH endpoint; else, on a board
   * with a network address, ssh (its shell channel is a slow serial line); else shell.
   */
  via?: CopyVia;
  /** The Nix store URL a store path is copied from (nix copy --from); default the host's own store. */
  from?: string;
  /** SSH user and private key file for nix copy; default the testbed's (root and its key). */
  user?: string;
  identity?: string;
}

/** What copyClosure() did: the store paths it copied, those the machine had, and how. */
export interface CopyResult {
  copied: string[];
  present: string[];
  via: 'nix' | 'ssh' | 'shell';
}

export type SwitchAction = 'switch' | 'boot' | 'test' | 'dry-activate';
/** Where a power cut can be made during switch(): after the copy, after the profile link, mid boot loader write, mid activation. */
export type CrashPoint = 'after-copy' | 'after-profile' | 'bootloader-write' | 'activation';

/** The booted system: its toplevel, the generation it is, and the boot loader entry that started it. */
export interface Booted {
  toplevel: string;
  generation: number | undefined;
  entry: string | undefined;
  bootId: string;
}

export class NixosHelpers {
  private readonly m: NixosMachine;
  /** Its commands, in plain sh (plain.ts). */
  private readonly sh: Commands;
  /** systemd-boot's EFI system partition, as bootloader() found it. */
  private esp = '/boot';

  constructor(machine: NixosMachine) {
    this.m = machine;
    this.sh = plain(machine);
  }

  /** What the boot loader strategies drive: the machine, and keys into its screen (a machine without one says so). */
  private get loader(): LoaderContext {
    return {
      m: this.m,
      esp: this.esp,
      sendKeys: (...combos) => {
        if (!this.m.screen) throw new ConfigurationError(`keys into a boot menu are not supported by ${this.m.label}: it has no screen fleetlab drives (a menu on its serial line takes sendConsole())`);
        return this.m.screen.sendKeys(...combos);
      },
    };
  }

  /** Every generation of the system profile (`nixos-rebuild list-generations --json`), newest first. */
  async generations(opts?: WaitOptions): Promise<Generation[]> {
    const out = await this.sh.succeed('nixos-rebuild list-generations --json', opts);
    try {
      return JSON.parse(out) as Generation[];
    } catch {
      throw new InfrastructureError(`machine ${this.m.name}: nixos-rebuild list-generations --json printed no JSON: ${out.slice(0, 300)}`);
    }
  }

  /** The profile's current generation and its toplevel. */
  async current(opts?: WaitOptions): Promise<{ generation: number; toplevel: string }> {
    const [link, toplevel] = (await this.sh.succeed(`readlink ${PROFILE}; readlink -f ${PROFILE}`, opts)).trim().split('\n');
    return { generation: generationOf(link!), toplevel: toplevel! };
  }

  /**
   * The booted system (/run/booted-system), which generation it is, and the boot entry that started it: on
   * systemd-boot the LoaderEntrySelected EFI variable (systemd-boot sets it), else the testbed's fleetlab.entry= on
   * the kernel command line (a real guest has neither on GRUB or extlinux: the generation is then the newest whose
   * toplevel was booted).
   */
  async booted(opts?: WaitOptions): Promise<Booted> {
    const out = await this.sh.succeed(
      `readlink -f /run/booted-system; cat /proc/sys/kernel/random/boot_id; cat /proc/cmdline; v=/sys/firmware/efi/efivars/LoaderEntrySelected-${LOADER_GUID}; if [ -r $v ]; then tail -c +5 $v | tr -d '\\000'; echo; else echo; fi; for l in ${PROFILE}-*-link; do echo "$l $(readlink -f "$l")"; done`,
      opts,
    );
    const [toplevel, bootId, cmdline, selected, ...links] = out.trim().split('\n');
    const entry = selected?.trim() || /(?:^|\s)fleetlab\.entry=(\S+)/.exec(cmdline!)?.[1];
    const matching = links.map((l) => l.split(' ')).filter(([, t]) => t === toplevel).map(([l]) => generationOf(l!));
    // Several generations can be the same toplevel: the entry names the one that was booted when it can.
    const fromEntry = entry && /^nixos-(?:generation-)?(\d+)(?:[+.]|$)/.exec(entry)?.[1];
    const generation = fromEntry && matching.includes(Number(fromEntry)) ? Number(fromEntry) : matching.length ? Math.max(...matching) : undefined;
    return { toplevel: toplevel!, generation, entry, bootId: bootId! };
  }

  /** Fails unless generation `n` is the booted one. */
  async expectBooted(n: number, opts?: WaitOptions): Promise<Booted> {
    const b = await this.booted(opts);
    if (b.generation !== n) {
      throw new TestFailure(`machine ${this.m.name}: expected generation ${n} to be booted, but ${b.generation === undefined ? `the booted system ${b.toplevel} is no generation of ${PROFILE}` : `generation ${b.generation} is`} (entry ${b.entry ?? 'unknown'})`);
    }
    return b;
  }

  /**
   * Builds a NixOS-shaped generation for this machine's testbed: the testbed's stand-in for `nix build` of a
   * toplevel. On a real NixOS image build the toplevel with nix and pass its store path to switch().
   */
  async testbedGeneration(spec: GenerationSpec): Promise<Toplevel> {
    const img = this.m.testbed;
    if (!img) throw new ConfigurationError(`machine ${this.m.name} does not boot a fleetlab testbed disk (profile ${this.m.profile.name}); build your toplevel with nix and pass its store path`);
    const into = await makeTempDir(`fleetlab-generation-${this.m.name}-`);
    return rememberClosure(await testbedSource().generation(img, spec, into));
  }

  /**
   * Copies the store paths of `top`'s closure that the machine lacks. Two ways:
   * - `nix`: `nix copy --to ssh://root@<machine>` from the host's Nix, as nixos-rebuild --target-host and deploy-rs
   *   do. It needs Nix on the host and on the machine, and the machine's SSH forward (ssh: true). A store path (a
   *   toplevel you built with nix) is copied from `from` (a Nix store URL; default the host's own store); a testbed
   *   Toplevel is registered in a Nix database beside its closure first (host nix-store), so it goes the same way.
   *   The machine's Nix then holds the paths as valid, with their hashes and references.
   * - `shell`: a tar stream through the shell channel (the testbed without Nix, or no SSH); on a machine with Nix the
   *   paths are registered there afterwards (nix-store --load-db).
   * `auto` (the default) takes nix when it can. Returns what was copied, what was there, and how.
   */
  async copyClosure(top: Toplevel | string, opts: CopyOptions = {}): Promise<CopyResult> {
    const path = typeof top === 'string' ? top : top.path;
    const bad = (field: string, value: unknown, msg: string) => new ConfigurationError(`machine ${this.m.name}: copyClosure(${path}): ${msg}`, { details: { field, value } });
    if (!STORE_PATH.test(path)) throw bad('toplevel', path, `"${path}" is no Nix store path (/nix/store/<32 base-32 characters>-<name>)`);
    const via = opts.via ?? 'auto';
    if (!['auto', 'nix', 'ssh', 'shell'].includes(via)) throw bad('via', via, `via: "${via}" is none of auto, nix, ssh, shell`);
    if (typeof top === 'string' && (via === 'shell' || via === 'ssh')) throw bad('via', via, `a store path is copied from a Nix store with nix copy; via: "${via}" takes a Toplevel fleetlab built`);
    if (typeof top !== 'string' && opts.from !== undefined) throw bad('from', opts.from, 'from names the Nix store a store path comes from; a Toplevel fleetlab built brings its own');
    const guestNix = (await this.sh.succeed('command -v nix-store || true', opts)).trim() !== '';
    if (via === 'nix' || typeof top === 'string') {
      const hostHas = await hostNix();
      if (!hostHas) throw bad('via', 'nix', 'nix copy needs Nix on this host: apt-get install nix-bin (scripts/setup.sh does), or give a Toplevel and via: "shell"');
      if (!guestNix) throw bad('via', 'nix', `nix copy needs Nix on the machine, and ${this.m.name} has no nix-store (the testbed with Nix is testbed: 'x86_64-nix')`);
      return this.copyWithNix(top, opts);
    }
    if (via === 'auto' && guestNix && this.m.hasHostLink && (await hostNix())) return this.copyWithNix(top, opts);
    if (via === 'ssh' || (via === 'auto' && this.m.kind === 'board' && this.m.hasHostLink)) return this.copyWithShell(top, guestNix, opts, 'ssh');
    return this.copyWithShell(top, guestNix, opts, 'shell');
  }

  /**
   * A tar stream of the paths the machine lacks, each renamed into the store whole: through the shell channel, or
   * (`ssh`) uploaded over an SSH session to the machine's SSH endpoint and unpacked there.
   */
  private async copyWithShell(top: Toplevel, guestNix: boolean, opts: WaitOptions, over: 'shell' | 'ssh'): Promise<CopyResult> {
    const ssh = over === 'ssh' ? await this.m.ssh(opts) : undefined;
    try {
      const shell = ssh ?? this.m;
      const have = (await plain(shell).succeed(top.closure.map((p) => `[ -e ${shellQuote(p)} ] && echo ${shellQuote(p)}`).join('; ') + '; true', opts)).trim().split('\n').filter(Boolean);
      const missing = top.closure.filter((p) => !have.includes(p));
      if (missing.length) {
        // Into a temporary directory first, then each path renamed into the store: a path is there whole or not at all.
        const unpack = (from: string) =>
          `set -e; t=/nix/store/.fleetlab-copy.$$; rm -rf $t; mkdir -p $t; ${from} | tar -xzf - -C $t; ` +
          missing.map((p) => `mv ${shellQuote(`$t${p}`).replace("'$t", "\"$t\"'")} ${shellQuote(p)}`).join('; ') +
          '; rm -rf $t; sync';
        // tar writes its archive to a file (through execa's buffers a large closure took seconds per MB).
        const dir = await makeTempDir(`fleetlab-copy-${this.m.name}-`);
        const archive = join(dir, 'closure.tar.gz');
        try {
          await execa('tar', ['-C', top.root, '-czf', archive, ...missing.map((p) => p.slice(1))]);
          if (ssh) {
            const remote = `/nix/store/.fleetlab-copy-${process.pid}.tar.gz`;
            await ssh.upload(archive, remote, { timeout: 300_000, ...opts });
            await ssh.succeed(`${unpack(`cat ${remote}`)}; rm -f ${remote}`, { timeout: 120_000, ...opts });
          } else {
            await plain(shell).succeed(unpack(`printf %s ${shellQuote((await readFile(archive)).toString('base64'))} | base64 -d`), { timeout: 120_000, ...opts });
          }
        } finally {
          await removeTempDir(dir);
        }
      }
      // A machine with Nix learns the paths too, or its nix-env refuses them.
      if (guestNix && (await hostNix())) await plain(shell).succeed(`printf %s ${shellQuote(await registration(top.root, top.closure))} | nix-store --load-db`, opts);
      this.m.log.note(`nixos: copied ${missing.length} store path(s) of ${top.path} ${ssh ? 'over SSH' : 'through the shell channel'} (${top.closure.length - missing.length} present)`);
      return { copied: missing, present: have, via: over };
    } finally {
      ssh?.close();
    }
  }

  /** `nix copy --to ssh://` from the host's Nix, over the machine's SSH forward, within a deadline and the machine's life. */
  private async copyWithNix(top: Toplevel | string, opts: CopyOptions): Promise<CopyResult> {
    const path = typeof top === 'string' ? top : top.path;
    const awaited = `nix copy of ${path} to ${this.m.name}`;
    const deadline = deadlineFrom(opts, 600_000, awaited, 'pass { timeout } to copyClosure()');
    let from = opts.from;
    let closure: string[];
    if (typeof top === 'string') {
      const q = await execa('nix-store', [...(from ? ['--store', from] : []), '-qR', path], { reject: false, env: nixEnv() });
      if (q.exitCode !== 0) throw new ConfigurationError(`machine ${this.m.name}: copyClosure(${path}): the host's Nix store${from ? ` ${from}` : ''} does not have it (nix-store -qR: ${q.stderr.trim().split('\n').pop()}). Build it there first (nix build), or pass from: '<store URL>'`, { details: { field: 'toplevel', value: path } });
      closure = q.stdout.trim().split('\n').filter(Boolean);
    } else {
      // The testbed's closure is a directory laid out as a store: registered beside it, it is a chroot store.
      await registerClosure(top.root, top.closure);
      from = chrootStore(top.root);
      closure = top.closure;
    }
    const invalid = (await this.sh.succeed(`nix-store --check-validity --print-invalid ${closure.map(shellQuote).join(' ')}`, opts)).trim().split('\n').filter(Boolean);
    let ep = this.m.sshEndpoint();
    const user = opts.user ?? ep.user;
    const identity = opts.identity ?? ep.privateKey;
    if (!identity) throw new ConfigurationError(`machine ${this.m.name}: copyClosure(${path}) with nix copy needs an SSH key its ${user} accepts: pass { identity: '<private key file>' }`, { details: { field: 'identity' } });
    if (!ep.hostKey) {
      // A machine fleetlab has not reached by SSH yet: its host key is pinned now, and checked by ssh from here on.
      (await this.m.ssh({ ...opts, user, privateKey: identity })).close();
      ep = this.m.sshEndpoint();
    }
    const dir = await makeTempDir(`fleetlab-nix-copy-${this.m.name}-`);
    const knownHosts = join(dir, 'known_hosts');
    await writeFile(knownHosts, `[${ep.host}]:${ep.port} ${ep.hostKey!.split(' ').slice(0, 2).join(' ')}\n`);
    const sshOpts = ['-p', String(ep.port), '-i', identity, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20'];
    const args = ['copy', '--no-check-sigs', ...(from ? ['--from', from] : []), '--to', `ssh://${user}@${ep.host}`, path];
    this.m.log.note(`nixos: nix ${args.join(' ')} (NIX_SSHOPTS=${sshOpts.join(' ')})`);
    const output: string[] = [];
    const started = Date.now();
    const child = spawnSupervised('nix copy', 'nix', args, {
      processGroup: true,
      env: nixEnv({ NIX_SSHOPTS: sshOpts.join(' ') }),
      onLine: (stream, line) => {
        output.push(line);
        this.m.log.note(`nix copy${stream === 'stderr' ? ' (stderr)' : ''}: ${line}`);
      },
    });
    const tail = () => output.slice(-20).join('\n');
    const life = this.m.lifeSignal(opts.signal);
    try {
      const r = await raceDeadline(child.exited, deadline, life, awaited);
      if (r.timedOut) throw new TimeoutError('infrastructure', { awaited: `nix copy of ${path} (${invalid.length} path(s)) to finish`, deadline, machine: this.m.name, lastLines: this.m.log.lastLines(20), hint: `nix copy's last lines:\n${tail()}\nTo allow more time: copyClosure(top, { timeout: ms })` });
      if (r.value.exitCode !== 0) {
        // A machine that died takes its SSH server with it, and nix copy may notice first: the death is the cause.
        await sleep(250);
        if (life.aborted) throw abortError(life, awaited);
        throw new InfrastructureError(`machine ${this.m.name}: nix copy of ${path} ${r.value.signal ? `was killed (${r.value.signal})` : `exited ${r.value.exitCode}`}:\n${tail()}`, { details: { exitCode: r.value.exitCode } });
      }
    } finally {
      await child.stop(2000).catch(() => undefined);
    }
    // Nix on the machine holds the toplevel as valid now, or the copy did not happen.
    const check = await this.sh.execute(`nix-store --check-validity ${shellQuote(path)}`, opts);
    if (check.exitCode !== 0) throw new InfrastructureError(`machine ${this.m.name}: nix copy of ${path} exited 0, but the machine's Nix does not hold it as valid: ${(check.stderr || check.stdout).trim()}`);
    this.m.log.note(`nixos: nix copy of ${path}: ${invalid.length} store path(s) copied, ${closure.length - invalid.length} present, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { copied: invalid, present: closure.filter((p) => !invalid.includes(p)), via: 'nix' };
  }

  /**
   * Makes `top` (a Toplevel built here or a store path already on the machine) the system profile's new generation
   * and runs its switch-to-configuration `action`, as nixos-rebuild does after building: `nix-env -p
   * /nix/var/nix/profiles/system --set`, then `<toplevel>/bin/switch-to-configuration <action>` (test and
   * dry-activate leave the profile alone). `crashAt` cuts the power at that point instead of finishing (tests of
   * interrupted updates); the machine is then off and the result says so.
   */
  async switch(top: Toplevel | string, opts: WaitOptions & { action?: SwitchAction; crashAt?: CrashPoint } = {}): Promise<ActivationResult> {
    const action = opts.action ?? 'switch';
    const path = typeof top === 'string' ? top : top.path;
    if ((opts.crashAt === 'bootloader-write' || opts.crashAt === 'activation') && !this.m.testbed) {
      throw new ConfigurationError(`machine ${this.m.name}: switch(…, { crashAt: '${opts.crashAt}' }) stops at a point only the testbed's switch-to-configuration and boot loader writer have, and ${this.m.name} boots no fleetlab testbed disk; cut the power at 'after-copy' or 'after-profile', or call crash() yourself`, { details: { field: 'crashAt', value: opts.crashAt } });
    }
    await this.ensureOnMachine(top, opts);
    if (opts.crashAt === 'after-copy') return this.cut(action, 'after-copy');
    if (action === 'switch' || action === 'boot') await this.sh.succeed(`nix-env -p ${PROFILE} --set ${shellQuote(path)}`, opts);
    if (opts.crashAt === 'after-profile') return this.cut(action, 'after-profile');
    const cmd = `${shellQuote(`${path}/bin/switch-to-configuration`)} ${action}`;
    if (opts.crashAt === 'bootloader-write' || opts.crashAt === 'activation') {
      // The testbed's switch-to-configuration stops at the point and says so on the console; then the power goes.
      this.m.console().mark();
      void this.sh.execute(`FLEETLAB_PAUSE_AT=${opts.crashAt} ${cmd}`, { timeout: 300_000 }).catch(() => undefined);
      await this.m.waitForConsoleText(`fleetlab: paused at ${opts.crashAt}`, { timeout: 120_000, ...opts, literal: true });
      return this.cut(action, opts.crashAt);
    }
    const r = await this.sh.execute(underSystemdRun(cmd), { timeout: 300_000, ...opts });
    const result = activationResult(action, r);
    this.m.log.note(`nixos: switch-to-configuration ${action} of ${path}: exit ${r.exitCode}${result.failedUnits.length ? `, failed units: ${result.failedUnits.join(', ')}` : ''}`);
    if (r.exitCode !== 0 && r.exitCode !== 4) {
      throw new TestFailure(`machine ${this.m.name}: switch-to-configuration ${action} of ${path} exited ${r.exitCode}\n${(r.stderr || r.stdout).trim().slice(-2000)}`);
    }
    return result;
  }

  /** A Toplevel's closure copied to the machine; a store path too, unless the machine has it already (nix copy). */
  private async ensureOnMachine(top: Toplevel | string, opts: WaitOptions): Promise<void> {
    if (typeof top === 'string' && (await this.sh.execute(`[ -e ${shellQuote(top)} ]`, opts)).exitCode === 0) return;
    await this.copyClosure(top, opts);
  }

  private async cut(action: SwitchAction, point: CrashPoint): Promise<ActivationResult> {
    this.m.log.note(`nixos: power cut at ${point}`);
    await this.m.crash();
    return { action, exitCode: -1, ok: false, failedUnits: [], stdout: '', stderr: `power cut at ${point}` };
  }

  /** `nixos-rebuild <action> --rollback`: the previous generation becomes current (switch, boot) or runs (test). */
  async rollback(opts: WaitOptions & { action?: 'switch' | 'boot' | 'test' } = {}): Promise<ActivationResult> {
    const action = opts.action ?? 'switch';
    const r = await this.sh.execute(`nixos-rebuild ${action} --rollback`, { timeout: 300_000, ...opts });
    // nixos-rebuild-ng passes switch-to-configuration's exit 4 through; the bash nixos-rebuild exits 1 after its
    // "warning: the following units failed" line. Either is "switched, with failed units", not an error.
    const result = activationResult(action, r);
    if (r.exitCode !== 0 && r.exitCode !== 4 && !(r.exitCode === 1 && result.failedUnits.length)) throw new TestFailure(`machine ${this.m.name}: nixos-rebuild ${action} --rollback exited ${r.exitCode}\n${(r.stderr || r.stdout).trim().slice(-2000)}`);
    return result;
  }

  /** Which boot loader the machine boots from: systemd-boot on an ESP at /boot, /boot/efi or /efi; GRUB, extlinux or the Pi's firmware files under /boot. */
  async bootloader(opts?: WaitOptions): Promise<Bootloader> {
    const out = (await this.sh.succeed('e=; for d in /efi /boot/efi /boot; do [ -e $d/loader/loader.conf ] && e=$d; done; if [ -n "$e" ]; then echo "systemd-boot $e"; elif [ -e /boot/grub/grub.cfg ]; then echo grub; elif [ -e /boot/extlinux/extlinux.conf ]; then echo extlinux; elif [ -e /boot/firmware/cmdline.txt ]; then echo raspi-firmware; else echo none; fi', opts)).trim();
    if (out === 'none') throw new ConfigurationError(`machine ${this.m.name}: neither /boot, /boot/efi nor /efi holds a systemd-boot, GRUB or extlinux configuration (is the boot partition mounted?)`);
    const [bl, esp] = out.split(' ');
    if (esp) this.esp = esp;
    return bl as Bootloader;
  }

  /** What the next boot will do, from the boot loader's own state. */
  async bootState(opts?: WaitOptions): Promise<BootState> {
    return bootLoader(await this.bootloader(opts)).state(this.loader, opts);
  }

  /**
   * Chooses generation `n` for the next boot only, through the boot loader's own mechanism: systemd-boot's
   * LoaderEntryOneShot EFI variable (what `bootctl set-oneshot` writes), GRUB's grubenv next_entry (what
   * `grub-reboot` writes), extlinux's DEFAULT (U-Boot has no one-shot: it stays until the next switch).
   */
  async setNextBoot(n: number, opts?: WaitOptions): Promise<void> {
    const bl = await this.bootloader(opts);
    await bootLoader(bl).setNextBoot(this.loader, n, opts);
    this.m.log.note(`nixos: next boot set to generation ${n} (${bl})`);
  }

  /**
   * fleetlab's boot counting on this machine (fleetlab.guest.bootCounting in its NixOS configuration; on the testbed's
   * systemd-boot disks): the tries a new generation gets, or undefined when it is off. nixpkgs' systemd-boot builder
   * writes no boot counters of its own, so without it a generation that fails keeps booting.
   */
  async bootCounting(opts?: WaitOptions): Promise<{ tries: number } | undefined> {
    const tries = await fleetlabSetting(this.m, 'boot-counting', 'tries', opts);
    return tries === undefined ? undefined : { tries };
  }

  /**
   * Installs `top` for a trial boot, so that the boot loader goes back to the generation before by itself when the
   * new one does not come up healthy:
   * - systemd-boot, by fleetlab's boot counting (it must be on: `bootCounting()`; this says so at once when it is
   *   not): the new generation becomes the default with its entry on trial (`nixos-generation-N+TRIES.conf`), each
   *   unhealthy boot of it reboots, and with no tries left systemd-boot boots the newest good generation; a healthy
   *   boot is blessed.
   * - GRUB, the grub-reboot way: it becomes a generation with its own menu entry, the default stays on the current
   *   generation, and grubenv's next_entry picks the new one for the next boot only. If it does not come up (its stage
   *   1 fails, the kernel panics), the boot after that is the default again; when it came up healthy, confirmTrial()
   *   makes it the default.
   * U-Boot's extlinux has neither, so on extlinux this refuses.
   */
  async trialBoot(top: Toplevel | string, opts: WaitOptions = {}): Promise<{ generation: number; previous: number }> {
    const bl = await this.bootloader(opts);
    if (bl !== 'grub' && bl !== 'systemd-boot') throw new ConfigurationError(`machine ${this.m.name}: trialBoot() needs a boot loader that can try a generation and go back by itself (systemd-boot with boot counting, GRUB's one-shot); ${bl} has neither`);
    const previous = (await this.current(opts)).generation;
    if (bl === 'systemd-boot') {
      const counting = await this.bootCounting(opts);
      if (!counting) throw new ConfigurationError(`machine ${this.m.name}: boot counting is not enabled on ${this.m.name}: set fleetlab.guest.bootCounting.enable = true in its NixOS configuration (nixpkgs' systemd-boot writes no boot counters, so a failing generation would never be rolled back)`);
      await this.switch(top, { ...opts, action: 'boot' });
      const generation = (await this.current(opts)).generation;
      const entry = (await this.bootState(opts)).entries.find((e) => e.id === `nixos-generation-${generation}.conf`);
      if (entry?.triesLeft === undefined) throw new TestFailure(`machine ${this.m.name}: generation ${generation} was installed, but its systemd-boot entry is not on trial (${entry?.file ?? 'no entry'}); boot counting puts a new generation on trial only`);
      this.m.log.note(`nixos: generation ${generation} on trial (${entry.file}, ${counting.tries} tries); the newest good generation boots when they are used up`);
      return { generation, previous };
    }
    await this.switch(top, { ...opts, action: 'boot' });
    const generation = (await this.current(opts)).generation;
    // The profile back on the generation that boots now: the default entry is it again, the new one stays in the menu.
    await this.bootDefault(previous, { timeout: 300_000, ...opts });
    await this.setNextBoot(generation, opts);
    this.m.log.note(`nixos: generation ${generation} on trial for the next boot (GRUB next_entry); the default stays generation ${previous}`);
    return { generation, previous };
  }

  /** Makes the generation on trial, booted and found healthy, the default: the profile moves to it and GRUB's default follows. */
  async confirmTrial(generation: number, opts: WaitOptions = {}): Promise<void> {
    const b = await this.booted(opts);
    if (b.generation !== generation) throw new TestFailure(`machine ${this.m.name}: generation ${generation} is not the booted one (generation ${b.generation} is), so there is no trial of it to confirm`);
    await this.bootDefault(generation, { timeout: 300_000, ...opts });
    this.m.log.note(`nixos: trial of generation ${generation} confirmed: it is the default`);
  }

  /** Rewrites grubenv with `vars` merged into what it holds (a fresh block when it is corrupt): 1024 bytes, as grub-editenv writes it. */
  writeGrubenv(vars: Record<string, string>, opts?: WaitOptions): Promise<void> {
    return writeGrubenv(this.loader, vars, opts);
  }

  /**
   * Reboots and chooses generation `n` in the boot loader's real menu, as a person would: the menu timeout raised for
   * this boot (systemd-boot's LoaderConfigTimeoutOneShot variable, GRUB's and extlinux's timeout in their files,
   * restored afterwards), keys typed into the menu (QMP keyboard for systemd-boot and GRUB, the serial console for
   * U-Boot's "Enter choice:" prompt), and the booted entry checked. Returns the new boot.
   */
  async bootViaMenu(n: number, opts: WaitOptions = {}): Promise<Booted> {
    const deadline = deadlineFrom(opts, 300_000, `booting generation ${n} from the menu of ${this.m.name}`, 'pass { timeout } to bootViaMenu()');
    const bl = await this.bootloader();
    const { keys, restore } = await bootLoader(bl).menu(this.loader, n, deadline);
    this.m.console().mark();
    const rebooted = this.m.reboot({ deadline });
    await keys();
    await rebooted;
    if (restore) await this.sh.succeed(restore);
    const b = await this.booted();
    if (b.generation !== n) throw new TestFailure(`machine ${this.m.name}: chose generation ${n} in the ${bl} menu, but generation ${b.generation} booted (entry ${b.entry})`);
    this.m.log.note(`nixos: booted generation ${n} from the ${bl} menu`);
    return b;
  }

  /**
   * The rescue an engineer at the serial console performs when the default generation does not boot at all and the
   * boot loader has no fallback of its own (U-Boot's extlinux: no one-shot, no boot counting in Debian's builds):
   * reboot, let the default fail (`failure` on the console, NixOS's stage-1 error by default), pick generation `n` at
   * U-Boot's next "Enter choice:" prompt, and once it is up, move the profile back to it (`nix-env
   * --switch-generation`, `switch-to-configuration boot`) so it is the default again. Returns the rescued boot.
   */
  async rescueViaMenu(n: number, opts: WaitOptions & { failure?: RegExp | string } = {}): Promise<Booted> {
    const deadline = deadlineFrom(opts, 360_000, `rescuing ${this.m.name} through its boot menu to generation ${n}`, 'pass { timeout } to rescueViaMenu()');
    const bl = await this.bootloader({ deadline });
    if (bl !== 'extlinux') {
      throw new ConfigurationError(`machine ${this.m.name}: rescueViaMenu() types into U-Boot's extlinux menu; ${bl} falls back by itself (${bl === 'grub' ? 'trialBoot()' : bl === 'systemd-boot' ? 'boot counting' : 'no menu: switch the profile'})`);
    }
    const at = await extlinuxEntry(this.m, n, { deadline });
    const con = this.m.console(this.m.profile.bootloaderConsole ?? this.m.profile.serialConsole);
    this.m.console().mark();
    const rebooted = this.m.reboot({ deadline });
    rebooted.catch(() => undefined);
    await this.m.waitForConsoleText(opts.failure ?? /An error occurred in stage 1|stage 2 init script .* not found/, { deadline });
    this.m.log.note(`nixos: the default generation failed to boot; choosing generation ${n} at U-Boot's next menu`);
    con.mark();
    await con.expect(/Enter choice:/, { deadline });
    await con.write(`${at + 1}\n`);
    await rebooted;
    const b = await this.booted({ deadline });
    if (b.generation !== n) throw new TestFailure(`machine ${this.m.name}: chose generation ${n} in U-Boot's menu after the failed boot, but generation ${b.generation} booted (entry ${b.entry})`);
    await this.bootDefault(n, { deadline });
    this.m.log.note(`nixos: rescued through the menu: generation ${n} booted and is the default again`);
    return b;
  }

  /** Generation `n` becomes the profile's and the boot loader's default: `nix-env --switch-generation`, `switch-to-configuration boot`. */
  private async bootDefault(n: number, opts: WaitOptions): Promise<void> {
    await this.sh.succeed(`nix-env -p ${PROFILE} --switch-generation ${n} && ${PROFILE}/bin/switch-to-configuration boot`, opts);
  }

  /**
   * Waits, across the reboots the machine makes by itself (boot counting, a failed stage 1, a health check), until it
   * has settled on generation `n`: booted, its shell answering, and no reset for `settleMs`.
   */
  async waitForGeneration(n: number, opts: WaitOptions & { settleMs?: number } = {}): Promise<Booted> {
    const deadline = deadlineFrom(opts, 600_000, `${this.m.name} to settle on generation ${n}`, 'pass { timeout } to waitForGeneration()');
    const settle = opts.settleMs ?? 8000;
    let last: Booted | undefined;
    let lastError: unknown;
    while (!deadline.expired()) {
      try {
        await this.m.waitForShell({ deadline });
        const boots = this.m.boots;
        last = await this.booted({ timeout: 10_000 });
        if (last.generation === n) {
          await sleep(settle, { signal: opts.signal });
          if (this.m.boots === boots && (await this.booted({ timeout: 10_000 })).bootId === last.bootId) return last;
        }
      } catch (err) {
        lastError = err;
      }
      await sleep(1000, { signal: opts.signal });
    }
    throw new TestFailure(`machine ${this.m.name} did not settle on generation ${n} within ${Math.round(deadline.budgetMs / 1000)} s; last booted: ${last ? `generation ${last.generation} (entry ${last.entry})` : 'unknown'}${lastError ? `; last error: ${String(lastError)}` : ''}\n${this.m.log.lastLines(20).join('\n')}`);
  }

  /** Units that failed in the running system: `systemctl --failed` on NixOS, the testbed's service manager otherwise. */
  async failedUnits(opts?: WaitOptions): Promise<string[]> {
    const out = await this.sh.succeed('if [ -x /etc/fleetlab/units ]; then /etc/fleetlab/units failed | sed "s/$/.service/"; else systemctl --failed --plain --no-legend | cut -d" " -f1; fi', opts);
    return out.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /**
   * Waits until the boot has finished its health assessment: systemd's `is-system-running --wait` on NixOS, the
   * testbed's /run/fleetlab/boot-complete (written where systemd-bless-boot would run). Returns whether it was healthy.
   */
  async waitForBootComplete(opts: WaitOptions = {}): Promise<{ healthy: boolean; detail: string }> {
    const out = await this.sh.waitUntilSucceeds(
      'if [ -e /run/fleetlab/boot-complete ]; then cat /run/fleetlab/boot-complete; elif command -v systemctl >/dev/null; then s=$(systemctl is-system-running); case "$s" in running) echo healthy ;; degraded) echo "unhealthy: $(systemctl --failed --plain --no-legend | cut -d" " -f1 | tr "\n" " ")" ;; *) exit 1 ;; esac; else exit 1; fi',
      { timeout: 120_000, intervalMs: 500, ...opts },
    );
    return { healthy: out.trim() === 'healthy', detail: out.trim() };
  }

  /**
   * Magic rollback as deploy-rs does it: switches to `top` and goes back by itself unless `healthCheck` passes in time
   * (magic-rollback.ts says how, on a guest with fleetlab's NixOS module and without).
   */
  async switchWithMagicRollback(top: Toplevel | string, opts: MagicRollbackOptions): Promise<MagicRollbackResult> {
    await this.ensureOnMachine(top, opts);
    return switchWithMagicRollback(this.m, typeof top === 'string' ? top : top.path, opts);
  }

  /** Runs `fn` and fails unless the machine booted exactly `n` more times meanwhile (from boot ids and resets). */
  async expectRebooted<T>(n: number, fn: () => Promise<T>): Promise<T> {
    const before = this.m.boots;
    const id = await this.m.bootId();
    const r = await fn();
    const after = this.m.boots;
    const idNow = await this.m.bootId();
    const seen = after - before;
    if (seen !== n || (n > 0 && idNow === id) || (n === 0 && idNow !== id)) {
      throw new TestFailure(`machine ${this.m.name}: expected ${n} reboot(s), saw ${seen} (boot id ${id === idNow ? 'unchanged' : 'changed'})`);
    }
    return r;
  }

  /** Runs `fn` and fails if the machine rebooted meanwhile. */
  expectNotRebooted<T>(fn: () => Promise<T>): Promise<T> {
    return this.expectRebooted(0, fn);
  }
}

/** What switch-to-configuration (or nixos-rebuild) said: exit code 4 is "switched, with failed units". */
function activationResult(action: SwitchAction, r: { exitCode: number; stdout: string; stderr: string }): ActivationResult {
  const failed = /warning: the following units failed: (.*)/.exec(r.stderr + r.stdout)?.[1];
  return {
    action,
    exitCode: r.exitCode,
    ok: r.exitCode === 0,
    failedUnits: failed ? failed.split(/,\s*/).map((u) => u.trim()).filter(Boolean) : [],
    stdout: r.stdout,
    stderr: r.stderr,
  };
}

/** 7 from /nix/var/nix/profiles/system-7-link (or system-7-link). */
function generationOf(link: string): number {
  const m = /system-(\d+)-link$/.exec(link.trim());
  if (!m) throw new InfrastructureError(`${link} is not a system profile generation link`);
  return Number(m[1]);
}
