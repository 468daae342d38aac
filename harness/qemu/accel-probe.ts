// Probes acceleration for real: a Linux guest (the x86_64 testbed) must reach userspace under the accelerator, with
// the CPU model fleetlab's machines get, within a short deadline. A boot sector is not enough: on some hosts a
// real-mode sector runs under KVM while Linux hangs silently, and on others `-cpu host` aborts at once.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, constants, accessSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { arch as hostArch, hostname, release } from 'node:os';
import { dirname } from 'node:path';
import { cacheDir } from '../cache/cache-dir.ts';
import { withLock } from '../cache/file-lock.ts';
import { spawnSupervised } from '../process/supervisor.ts';
import { Deadline, now, sleep } from '../time/deadline.ts';
import { which } from './host-packages.ts';
import { qemuCommand } from './qemu-command.ts';
import { testbedImage } from './testbed-source.ts';

/** Whether one accelerator works here, and why not if it does not. */
export interface AccelVerdict {
  usable: boolean;
  reason: string;
  durationMs: number;
}

/** The probe's answer for this host, cached per host, kernel, QEMU and probe version. */
export interface AccelProbeResult {
  key: string;
  probedAt: string;
  binary: string;
  kvm: AccelVerdict;
  tcg: AccelVerdict;
}

/** Bumped whenever what the probe proves changes, so verdicts of an older probe are ignored. */
const PROBE_VERSION = 2;
const CACHE_TTL_MS = 24 * 3600_000;
/** A healthy KVM boots the testbed to userspace in about a second. */
export const KVM_PROBE_MS = 20_000;
const TCG_PROBE_MS = 90_000;
const PROBE_NAME = 'accel-probe';

/** The guest each host architecture probes with: its testbed recipe, machine type and serial console. */
const PROBE_GUEST: Record<string, { binary: string; recipe: string; machine: string; console: string }> = {
  x64: { binary: 'qemu-system-x86_64', recipe: 'x86_64', machine: 'q35', console: 'ttyS0' },
  arm64: { binary: 'qemu-system-aarch64', recipe: 'aarch64', machine: 'virt', console: 'ttyAMA0' },
};

/** Boots the testbed kernel and initrd under `accel` and waits for its init's "up" line on the serial port. */
async function tryAccel(binary: string, accel: 'kvm' | 'tcg', budgetMs: number): Promise<AccelVerdict> {
  const t0 = now();
  const guest = PROBE_GUEST[hostArch()]!;
  let image;
  try {
    image = await testbedImage(guest.recipe, 'accel probe');
  } catch (err) {
    return { usable: false, reason: `no probe guest: the ${guest.recipe} testbed could not be built: ${(err as Error).message.split('\n')[0]}`, durationMs: 0 };
  }
  const marker = `fleetlab testbed: ${PROBE_NAME} up`;
  let seen = false;
  let printed = false;
  // Under KVM the probe uses -cpu host, the CPU model fleetlab's KVM machines get (qemu-argv.ts).
  const cpu = accel === 'kvm' ? ['-cpu', 'host'] : guest.machine === 'virt' ? ['-cpu', 'cortex-a57'] : [];
  const argv = [
    '-accel', accel, ...cpu, '-M', guest.machine, '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio',
    '-kernel', image.kernel, '-initrd', image.initrd, '-append', `console=${guest.console} panic=-1 fleetlab.hostname=${PROBE_NAME}`, '-no-reboot',
  ];
  const cmd = qemuCommand(binary, argv);
  const proc = spawnSupervised(`accel-probe-${accel}`, cmd.file, cmd.args, {
    onLine: (stream, line) => {
      if (stream !== 'stdout') return;
      printed = true;
      if (line.includes(marker)) seen = true;
    },
  });
  const deadline = Deadline.after(budgetMs, `${accel} probe`, { unscaled: true });
  while (!seen && proc.running && !deadline.expired()) await sleep(50);
  const ran = proc.running;
  await proc.stop(1000);
  const durationMs = Math.round(now() - t0);
  const cpuNote = accel === 'kvm' ? ' -cpu host' : '';
  if (seen) return { usable: true, reason: `a Linux guest (the ${guest.recipe} testbed) reached userspace under -accel ${accel}${cpuNote} in ${durationMs} ms`, durationMs };
  if (!ran) {
    const exit = proc.exitStatus;
    const err = proc.stderrTail().trim().split('\n').slice(-3).join(' / ');
    return { usable: false, reason: `QEMU with -accel ${accel}${cpuNote} exited (${exit?.signal ?? `code ${exit?.exitCode}`}) before the Linux guest reached userspace: ${err || 'no stderr'}`, durationMs };
  }
  return {
    usable: false,
    reason: `QEMU with -accel ${accel}${cpuNote} ran, but the Linux guest ${printed ? 'did not reach userspace' : 'printed nothing at all'} within ${budgetMs / 1000} s (the accelerator hangs Linux)`,
    durationMs,
  };
}

async function qemuVersion(binary: string): Promise<string> {
  const r = await execa(binary, ['--version'], { reject: false, timeout: 10_000 });
  return r.stdout.split('\n')[0]?.trim() ?? 'unknown';
}

/** One verdict file per probe key (host, kernel, QEMU, probe version, wrapper), so differently set-up runs never overwrite each other's. */
function cachePath(key: string): string {
  return cacheDir(`accel-probe-${createHash('sha256').update(key).digest('hex').slice(0, 12)}.json`);
}

/** Probes KVM and TCG (using the cache unless `refresh`). */
export async function probeAccel(opts: { refresh?: boolean } = {}): Promise<AccelProbeResult> {
  const guest = PROBE_GUEST[hostArch()];
  const binary = which(guest?.binary ?? 'qemu-system-x86_64') ?? guest?.binary ?? 'qemu-system-x86_64';
  const version = existsSync(binary) ? await qemuVersion(binary) : 'not installed';
  const key = `probe v${PROBE_VERSION}|${hostname()}|${release()}|${binary}|${version}|${process.env.FLEETLAB_QEMU_WRAPPER ?? ''}`;
  const cached = async () => {
    if (opts.refresh) return undefined;
    try {
      const c = JSON.parse(await readFile(cachePath(key), 'utf8')) as AccelProbeResult;
      return c.key === key && Date.now() - Date.parse(c.probedAt) < CACHE_TTL_MS ? c : undefined;
    } catch {
      return undefined;
    }
  };
  const hit = await cached();
  if (hit) return hit;
  await mkdir(dirname(cachePath(key)), { recursive: true });
  // Parallel workers that all miss the cache probe once, not once each.
  return withLock(`${cachePath(key)}.lock`, async () => {
    const again = await cached();
    if (again) return again;
    const result: AccelProbeResult = { key, probedAt: new Date().toISOString(), binary, kvm: await probeKvm(binary), tcg: { usable: false, reason: '', durationMs: 0 } };
    if (!which(binary)) result.tcg = { usable: false, reason: `${binary} is not installed (Debian package qemu-system-x86 or qemu-system-arm)`, durationMs: 0 };
    else if (!guest) result.tcg = { usable: true, reason: `assumed: no probe guest for a ${hostArch()} host`, durationMs: 0 };
    else result.tcg = await tryAccel(binary, 'tcg', TCG_PROBE_MS);
    await writeCache(result);
    return result;
  });
}

async function writeCache(result: AccelProbeResult): Promise<void> {
  await mkdir(dirname(cachePath(result.key)), { recursive: true });
  await writeFile(cachePath(result.key), JSON.stringify(result, null, 2) + '\n');
}

/**
 * Records that KVM failed a real machine although the probe had passed (a verdict gone stale: a module update, a
 * changed host): the cache says unusable with `reason`, so later machines go straight to TCG.
 */
export async function markKvmUnusable(reason: string): Promise<void> {
  const current = await probeAccel();
  await writeCache({ ...current, probedAt: new Date().toISOString(), kvm: { usable: false, reason, durationMs: 0 } });
}

async function probeKvm(binary: string): Promise<AccelVerdict> {
  if (!existsSync('/dev/kvm')) return { usable: false, reason: '/dev/kvm does not exist (no KVM module, or not exposed to this container/VM)', durationMs: 0 };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { usable: false, reason: '/dev/kvm exists but this user cannot open it (add the user to group kvm)', durationMs: 0 };
  }
  if (!which(binary)) return { usable: false, reason: `${binary} is not installed`, durationMs: 0 };
  if (!PROBE_GUEST[hostArch()]) return { usable: false, reason: `no probe guest for a ${hostArch()} host; not probed`, durationMs: 0 };
  return tryAccel(binary, 'kvm', KVM_PROBE_MS);
}

/** Guest arch of QEMU binaries, to tell native from cross-architecture guests. */
const HOST_QEMU_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

/** The accelerator a machine uses: explicit ones as asked, auto from the probe, TCG for cross-architecture guests. */
/** The accelerator a machine starts under, why, and whether auto chose it (then a KVM that hangs falls back to TCG). */
export interface AccelChoice {
  accel: 'kvm' | 'tcg' | 'hvf';
  why: string;
  auto: boolean;
}

export async function chooseAccel(requested: 'auto' | 'kvm' | 'tcg' | 'hvf', guestArch: string): Promise<AccelChoice> {
  if (requested !== 'auto') return { accel: requested, why: `requested ${requested}`, auto: false };
  const native = HOST_QEMU_ARCH[hostArch()] === guestArch || (guestArch === 'i386' && hostArch() === 'x64');
  if (!native) return { accel: 'tcg', why: `cross-architecture guest (${guestArch} on ${hostArch()}) runs under TCG`, auto: true };
  const probe = await probeAccel();
  if (probe.kvm.usable) return { accel: 'kvm', why: `auto: KVM probe passed (${probe.kvm.reason})`, auto: true };
  return { accel: 'tcg', why: `auto: falling back to TCG because KVM is not usable: ${probe.kvm.reason}`, auto: true };
}
