// Magic rollback as deploy-rs does it, and switch-to-configuration run as nixos-rebuild runs it where systemd is
// PID 1. The guest's part of the rollback is one script, machines/testbed/nixos/fleetlab-magic-rollback: fleetlab's
// NixOS module runs it (fleetlab.guest.magicRollback: armed by the activation, watched by its service), and on a
// guest without the module fleetlab copies it there and runs it after the switch. machine.nixos
// (nixos.ts) exposes it as switchWithMagicRollback().
import { readFile } from 'node:fs/promises';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import { packageFile } from '../package-files.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { shellQuote } from '../shell/guest-helper.ts';
import { plain } from '../shell/plain.ts';
import { SYSTEM_PROFILE as PROFILE, type NixosMachine } from './nixos-machine.ts';

export type MagicRollbackOptions = WaitOptions & { confirmWithinMs?: number; healthCheck: () => Promise<boolean | void> };
export interface MagicRollbackResult {
  confirmed: boolean;
  rolledBack: boolean;
  activation: number;
  log: string;
}

/** The guest runs systemd as PID 1 and has systemd-run (sh). */
const SYSTEMD_RUNS = '[ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1';

/**
 * `cmd` (a switch-to-configuration call) run as nixos-rebuild runs it where systemd is PID 1: in a transient unit
 * (`systemd-run … --unit=nixos-rebuild-switch-to-configuration --wait`, nixpkgs #39118), so a switch that restarts the
 * unit fleetlab's shell runs in does not kill the activation halfway. Elsewhere (the testbed's busybox init), directly.
 */
export function underSystemdRun(cmd: string): string {
  return `if ${SYSTEMD_RUNS}; then systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER --collect --no-ask-password --pipe --quiet --service-type=exec --unit=nixos-rebuild-switch-to-configuration --wait ${cmd} </dev/null; else ${cmd}; fi`;
}

/**
 * A number fleetlab's NixOS module (or the testbed) puts in /etc/fleetlab/NAME.conf as KEY=N, saying a feature of it
 * is on (boot-counting's tries, magic-rollback's timeout); undefined when the file or the key is not there.
 */
export async function fleetlabSetting(m: NixosMachine, name: string, key: string, opts?: WaitOptions): Promise<number | undefined> {
  const f = `/etc/fleetlab/${name}.conf`;
  const out = (await plain(m).succeed(`[ -r ${f} ] && sed -n "s/^${key}=//p" ${f}; true`, opts)).trim();
  return /^\d+$/.test(out) ? Number(out) : undefined;
}

/**
 * Switches to `path` (already on the machine) by a detached activation on the guest, then waits for `healthCheck`;
 * when it passes fleetlab confirms (creates /run/fleetlab/magic-rollback/confirmed), and without a confirmation
 * within the time the guest goes back to the system that ran before by itself (the profile too). With the NixOS
 * module its timeout applies, not `confirmWithinMs`.
 */
export async function switchWithMagicRollback(m: NixosMachine, path: string, opts: MagicRollbackOptions): Promise<MagicRollbackResult> {
  const sh = plain(m);
  const dir = '/run/fleetlab/magic-rollback';
  const moduleTimeout = await fleetlabSetting(m, 'magic-rollback', 'timeout', opts);
  const byModule = moduleTimeout !== undefined;
  const seconds = moduleTimeout ?? Math.max(5, Math.round((opts.confirmWithinMs ?? 30_000) / 1000));
  if (byModule && opts.confirmWithinMs !== undefined) m.log.note(`nixos: ${m.name} has fleetlab.guest.magicRollback: its timeout (${seconds} s) applies, not confirmWithinMs`);
  const scriptFile = packageFile('machines/testbed/nixos/fleetlab-magic-rollback');
  if (!scriptFile) throw new InfrastructureError('fleetlab\'s magic rollback script (machines/testbed/nixos/fleetlab-magic-rollback) is missing from this installation');
  const run = [
    `D=${dir}; P=${PROFILE}; new=${shellQuote(path)}`,
    'prev=$(readlink -f /run/current-system)',
    `nix-env -p $P --set "$new" && ${underSystemdRun('"$new/bin/switch-to-configuration" switch')}; echo $? > $D/activation`,
    // With the module, the activation armed its own watch; without it, the same script is armed and watches here.
    byModule ? 'exit 0' : `sh $D/fleetlab-magic-rollback arm switch "$prev" && exec sh $D/fleetlab-magic-rollback watch ${seconds}`,
  ].join('\n');
  const detached = `if ${SYSTEMD_RUNS}; then systemd-run --quiet --collect --unit=fleetlab-magic-rollback-switch-$$ sh -c "sh ${dir}/run.sh > ${dir}/log 2>&1"; else setsid sh ${dir}/run.sh > ${dir}/log 2>&1 < /dev/null & fi`;
  await sh.succeed(`mkdir -p ${dir} && rm -f ${dir}/armed ${dir}/waiting ${dir}/confirmed ${dir}/result ${dir}/activation ${dir}/rolling-back && printf %s ${shellQuote(await readFile(scriptFile, 'utf8'))} > ${dir}/fleetlab-magic-rollback && printf %s ${shellQuote(run)} > ${dir}/run.sh && ${detached}`, opts);
  const activation = Number((await sh.waitUntilSucceeds(`cat ${dir}/activation`, { timeout: 300_000, intervalMs: 500, ...opts })).trim());
  let healthy = false;
  try {
    healthy = (await opts.healthCheck()) !== false;
  } catch (err) {
    m.log.note(`nixos: health check after switching to ${path} failed: ${String(err)}`);
  }
  if (healthy) await sh.succeed(`: > ${dir}/confirmed`);
  const result = (await sh.waitUntilSucceeds(`cat ${dir}/result`, { timeout: (seconds + 300) * 1000, intervalMs: 1000, ...opts })).trim();
  const log = await sh.succeed(`cat ${dir}/log 2>/dev/null; true`);
  m.log.note(`nixos: magic rollback of ${path}${byModule ? ' (the NixOS module\'s)' : ''}: activation exit ${activation}, ${result}`);
  return { confirmed: result === 'confirmed', rolledBack: result.startsWith('rolled-back'), activation, log };
}
