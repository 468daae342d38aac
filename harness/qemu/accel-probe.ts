// Probes acceleration for real: a tiny VM must print a marker under -accel kvm within a short deadline.
import { existsSync, constants, accessSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { arch as hostArch, hostname, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cacheDir } from '../cache/cache-dir.ts';
import { spawnSupervised } from '../process/supervisor.ts';
import { Deadline, now, sleep } from '../time/deadline.ts';
import { which } from './host-packages.ts';

/** Whether one accelerator works here, and why not if it does not. */
export interface AccelVerdict {
  usable: boolean;
  reason: string;
  durationMs: number;
}

/** The probe's answer for this host, cached per host, kernel and QEMU binary. */
export interface AccelProbeResult {
  key: string;
  probedAt: string;
  binary: string;
  kvm: AccelVerdict;
  tcg: AccelVerdict;
}

const MARKER = 'FLPROBE-OK';
const CACHE_TTL_MS = 24 * 3600_000;

/** A 512-byte boot sector that writes the marker to COM1 and halts (x86, real mode). */
function probeBootSector(): Buffer {
  const code = [0x31, 0xc0, 0x8e, 0xd8, 0xfc, 0xbe, 0x17, 0x7c, 0xba, 0xf8, 0x03, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xfa, 0xf4, 0xeb, 0xfc];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  Buffer.from(`${MARKER}\r\n\0`, 'latin1').copy(sector, code.length);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** Boots the probe sector with `accel` and waits for the marker on the serial port. */
async function tryAccel(binary: string, accel: 'kvm' | 'tcg', budgetMs: number, dir: string): Promise<AccelVerdict> {
  const t0 = now();
  const disk = join(dir, 'probe.img');
  if (!existsSync(disk)) await writeFile(disk, probeBootSector());
  let seen = false;
  // Under KVM the probe uses -cpu host, the CPU model fleetlab's KVM machines get: a probe that passes
  // with a CPU the machines never use proves nothing (on some hosts the default model passes a boot
  // sector but hangs Linux, while host aborts at once).
  const cpu = accel === 'kvm' ? ['-cpu', 'host'] : [];
  const proc = spawnSupervised(`accel-probe-${accel}`, binary, [
    '-accel', accel, ...cpu, '-M', 'pc', '-m', '32', '-nodefaults', '-no-user-config', '-display', 'none',
    '-serial', 'stdio', '-drive', `file=${disk},format=raw,if=ide`,
  ], { onLine: (_s, line) => { if (line.includes(MARKER)) seen = true; } });
  const deadline = Deadline.after(budgetMs, `${accel} probe`, { unscaled: true });
  while (!seen && proc.running && !deadline.expired()) await sleep(50);
  const ran = proc.running;
  await proc.stop(1000);
  const durationMs = Math.round(now() - t0);
  if (seen) return { usable: true, reason: `a test VM booted and printed its marker in ${durationMs} ms`, durationMs };
  if (!ran) {
    const exit = proc.exitStatus;
    const err = proc.stderrTail().trim().split('\n').slice(-3).join(' / ');
    const cpuNote = accel === 'kvm' ? ' -cpu host' : '';
    return { usable: false, reason: `QEMU with -accel ${accel}${cpuNote} exited (${exit?.signal ?? `code ${exit?.exitCode}`}) before the test VM printed its marker: ${err || 'no stderr'}`, durationMs };
  }
  return { usable: false, reason: `QEMU with -accel ${accel} started but the test VM printed nothing within ${budgetMs / 1000} s (the accelerator hangs)`, durationMs };
}

/** Probes KVM and TCG on x86 hosts (using the cache unless `refresh`). */
export async function probeAccel(opts: { refresh?: boolean } = {}): Promise<AccelProbeResult> {
  const binary = which(hostArch() === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64') ?? 'qemu-system-x86_64';
  const key = `${hostname()}|${release()}|${binary}|${existsSync(binary) ? (await readFile(binary)).length : 0}`;
  const cachePath = cacheDir('accel-probe.json');
  if (!opts.refresh) {
    try {
      const cached = JSON.parse(await readFile(cachePath, 'utf8')) as AccelProbeResult;
      if (cached.key === key && Date.now() - Date.parse(cached.probedAt) < CACHE_TTL_MS) return cached;
    } catch {
      /* probe */
    }
  }
  const result: AccelProbeResult = { key, probedAt: new Date().toISOString(), binary, kvm: await probeKvm(binary), tcg: { usable: false, reason: '', durationMs: 0 } };
  if (!which(binary)) {
    result.tcg = { usable: false, reason: `${binary} is not installed (Debian package qemu-system-x86)`, durationMs: 0 };
  } else if (hostArch() !== 'x64') {
    result.tcg = { usable: true, reason: `assumed: the probe VM is x86 code and this host is ${hostArch()}`, durationMs: 0 };
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-probe-'));
    try {
      result.tcg = await tryAccel(binary, 'tcg', 30_000, dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  await mkdir(dirname(cachePath), { recursive: true });
  await writeFile(cachePath, JSON.stringify(result, null, 2) + '\n');
  return result;
}

async function probeKvm(binary: string): Promise<AccelVerdict> {
  if (!existsSync('/dev/kvm')) return { usable: false, reason: '/dev/kvm does not exist (no KVM module, or not exposed to this container/VM)', durationMs: 0 };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { usable: false, reason: '/dev/kvm exists but this user cannot open it (add the user to group kvm)', durationMs: 0 };
  }
  if (!which(binary)) return { usable: false, reason: `${binary} is not installed`, durationMs: 0 };
  if (hostArch() !== 'x64') return { usable: false, reason: `the KVM probe VM is x86 code; not probed on ${hostArch()}`, durationMs: 0 };
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-probe-'));
  try {
    return await tryAccel(binary, 'kvm', 8_000, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Guest arch of QEMU binaries, to tell native from cross-architecture guests. */
const HOST_QEMU_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

/** The accelerator a machine uses: explicit ones as asked, auto from the probe, TCG for cross-architecture guests. */
export async function chooseAccel(requested: 'auto' | 'kvm' | 'tcg' | 'hvf', guestArch: string): Promise<{ accel: 'kvm' | 'tcg' | 'hvf'; why: string }> {
  if (requested !== 'auto') return { accel: requested, why: `requested ${requested}` };
  const native = HOST_QEMU_ARCH[hostArch()] === guestArch || (guestArch === 'i386' && hostArch() === 'x64');
  if (!native) return { accel: 'tcg', why: `cross-architecture guest (${guestArch} on ${hostArch()}) runs under TCG` };
  const probe = await probeAccel();
  if (probe.kvm.usable) return { accel: 'kvm', why: 'auto: KVM probe passed' };
  return { accel: 'tcg', why: `auto: falling back to TCG because KVM is not usable: ${probe.kvm.reason}` };
}
