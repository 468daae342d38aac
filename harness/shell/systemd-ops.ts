// systemd units on any machine with a shell: waitForUnit, systemctl, unit properties (the NixOS test driver's
// wait_for_unit, systemctl, get_unit_info, get_unit_property, require_unit_state, start_job, stop_job), built once
// on a Shell, so VMs and boards both have them. Each call is one command in the guest (one round trip).
import { ConfigurationError, TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import type { ExecResult, Shell } from '../protocols/shell.ts';
import type { Systemd, SystemdOptions, UnitActiveState } from '../protocols/systemd.ts';
import { deadlineFrom, pollUntil } from '../time/deadline.ts';
import { shellQuote } from './guest-helper.ts';

/** What the guest prints instead of running systemctl when its init is not systemd (sd_booted(): /run/systemd/system). */
const NO_SYSTEMD = '__fleetlab_no_systemd';

/** `KEY=VALUE` lines (systemctl show) by key; a value keeps any `=` it holds. */
export function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

export class SystemdOps implements Systemd {
  private readonly shell: Shell;
  private readonly lastLines: () => string[];

  constructor(shell: Shell, lastLines: () => string[] = () => []) {
    this.shell = shell;
    this.lastLines = lastLines;
  }

  async systemctl(args: string, opts?: SystemdOptions): Promise<ExecResult> {
    return this.run((ctl) => `${ctl} ${args}`, opts);
  }

  async unitInfo(unit: string, opts?: SystemdOptions): Promise<Record<string, string>> {
    const r = await this.run((ctl) => `${ctl} --no-pager show -- ${shellQuote(unit)}`, opts);
    if (r.exitCode !== 0) throw new TestFailure(`systemctl show ${unit}${this.on(opts)} exited ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
    return parseShow(r.stdout);
  }

  async unitProperty(unit: string, name: string, opts?: SystemdOptions): Promise<string> {
    const r = await this.run((ctl) => `${ctl} --no-pager show -p ${shellQuote(name)} -- ${shellQuote(unit)}`, opts);
    if (r.exitCode !== 0) throw new TestFailure(`systemctl show -p ${name} ${unit}${this.on(opts)} exited ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
    const props = parseShow(r.stdout);
    if (!(name in props)) throw new ConfigurationError(`unit ${unit}${this.on(opts)} has no property "${name}" (systemctl show -p ${name} printed nothing; property names are case-sensitive, e.g. ActiveState, MainPID)`);
    return props[name]!;
  }

  async requireUnitState(unit: string, state: UnitActiveState = 'active', opts?: SystemdOptions): Promise<void> {
    const actual = await this.unitProperty(unit, 'ActiveState', opts);
    if (actual !== state) throw new TestFailure(`unit ${unit}${this.on(opts)} is ${actual}, expected ${state}\n${await this.status(unit, opts)}`);
  }

  async startUnit(unit: string, opts?: SystemdOptions): Promise<void> {
    await this.job('start', unit, opts);
  }

  async stopUnit(unit: string, opts?: SystemdOptions): Promise<void> {
    await this.job('stop', unit, opts);
  }

  async waitForUnit(unit: string, opts?: SystemdOptions & { intervalMs?: number }): Promise<void> {
    const awaited = `unit ${unit}${this.on(opts)} to be active`;
    const deadline = deadlineFrom(opts, 900_000, `wait for ${awaited} on ${this.shell.machineName}`, 'pass { timeout } to waitForUnit');
    const u = shellQuote(unit);
    // One round trip a try: the unit's states and, when it is inactive, whether any job is queued and its state again
    // (a job may have finished between the two reads: NTD reads it twice too).
    const probe = (ctl: string) =>
      `s=$(${ctl} show -p LoadState -p ActiveState -p SubState -- ${u}) || exit $?; echo "$s"; ` +
      `case "$s" in *ActiveState=inactive*) echo "Jobs=$(${ctl} list-jobs --no-legend --no-pager 2>/dev/null | grep -c .)"; ` +
      `echo "Again$(${ctl} show -p ActiveState -- ${u})" ;; esac`;
    let last = '';
    const res = await pollUntil(
      async () => {
        const r = await this.run(probe, { ...opts, deadline, timeout: undefined });
        const s = parseShow(r.stdout);
        last = `${s.ActiveState ?? '?'} (${s.SubState ?? '?'}, ${s.LoadState ?? '?'})`;
        if (r.exitCode !== 0) throw new TestFailure(`waiting for ${awaited}: systemctl show exited ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
        if (s.ActiveState === 'active') return true;
        const why =
          s.ActiveState === 'failed' ? `reached state "failed"` :
          s.ActiveState === 'inactive' && s.Jobs === '0' && s.AgainActiveState === 'inactive'
            ? `is inactive and no job is queued${s.LoadState && s.LoadState !== 'loaded' ? ` (LoadState=${s.LoadState})` : ''}`
            : undefined;
        if (why) throw new TestFailure(`unit ${unit}${this.on(opts)} ${why} on ${this.shell.machineName}: it will not become active\n${await this.status(unit, opts)}`);
        return undefined;
      },
      { deadline, intervalMs: opts?.intervalMs ?? 500, signal: opts?.signal, awaited },
    );
    if (res.timedOut) throw new TimeoutError('test-failure', { awaited: `${awaited} (last seen: ${last})`, deadline, machine: this.shell.machineName, lastLines: this.lastLines() });
  }

  private async job(verb: 'start' | 'stop', unit: string, opts?: SystemdOptions): Promise<void> {
    const r = await this.run((ctl) => `${ctl} ${verb} -- ${shellQuote(unit)}`, opts);
    if (r.exitCode !== 0) throw new TestFailure(`systemctl ${verb} ${unit}${this.on(opts)} failed on ${this.shell.machineName} (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim()}\n${await this.status(unit, opts)}`);
  }

  /** `systemctl status UNIT` for an error message (its last 20 journal lines). */
  private async status(unit: string, opts?: SystemdOptions): Promise<string> {
    const r = await this.run((ctl) => `${ctl} status --no-pager -n 20 -- ${shellQuote(unit)} 2>&1`, { ...opts, deadline: undefined, timeout: 30_000 }).catch((e: Error) => ({ stdout: `(systemctl status failed: ${e.message})` }));
    return `systemctl status ${unit}:\n${r.stdout.trimEnd().split('\n').map((l) => `  | ${l}`).join('\n')}`;
  }

  private on(opts?: SystemdOptions): string {
    return opts?.user ? ` (user ${opts.user}'s manager)` : '';
  }

  /**
   * Runs `script(ctl)` where `ctl` is systemctl, or for `user` the whole script as that user (`su -l`) with
   * `systemctl --user` and the user's runtime directory, as NTD does. A guest without systemd is said at once.
   * The script is fleetlab's own: plain sh (shell/plain.ts), whatever the profile says of strict commands.
   */
  private async run(script: (ctl: string) => string, opts?: SystemdOptions): Promise<ExecResult> {
    const { user, ...exec } = opts ?? {};
    const body = user
      ? `su -l ${shellQuote(user)} -s /bin/sh -c ${shellQuote(`export XDG_RUNTIME_DIR=/run/user/$(id -u); ${script('systemctl --user')}`)}`
      : script('systemctl');
    const r = await this.shell.execute(`if [ ! -d /run/systemd/system ]; then echo "${NO_SYSTEMD} $(cat /proc/1/comm 2>/dev/null)"; exit 3; fi; ${body}`, { ...exec, strict: false });
    const marker = r.stdout.startsWith(NO_SYSTEMD) ? r.stdout.slice(NO_SYSTEMD.length).trim() : undefined;
    if (marker !== undefined) throw new ConfigurationError(`${this.shell.machineName} does not run systemd (its PID 1 is "${marker || 'unknown'}"; no /run/systemd/system): the systemd calls (waitForUnit, systemctl, unitProperty, …) need a guest whose init is systemd, e.g. profile x86_64-systemd`);
    return r;
  }
}
