// What this host can do: QEMU per architecture, firmware, tools, and acceleration probed for real.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { arch, cpus, release, totalmem } from 'node:os';
import { probeAccel, type AccelVerdict } from '../qemu/accel-probe.ts';
import { QEMU_PACKAGES, TOOL_PACKAGES, which } from '../qemu/host-packages.ts';

/** One firmware set a profile may need. */
export interface FirmwareReport {
  name: string;
  package: string;
  files: { path: string; found: boolean }[];
  found: boolean;
}

/** What `fleetlab doctor --json` prints. */
export interface DoctorReport {
  host: { arch: string; kernel: string; cores: number; memoryGiB: number; node: string };
  qemu: Record<string, { binary: string; path: string | null; version: string | null; package: string }>;
  firmware: FirmwareReport[];
  tools: Record<string, { path: string | null; package: string }>;
  accel: { kvm: AccelVerdict; tcg: AccelVerdict; hvf: AccelVerdict; auto: 'kvm' | 'tcg' };
  problems: string[];
}

const FIRMWARE: { name: string; package: string; files: string[] }[] = [
  { name: 'OVMF x64 (UEFI)', package: 'ovmf', files: ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'] },
  { name: 'OVMF ia32 (32-bit UEFI)', package: 'ovmf-ia32', files: ['/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd', '/usr/share/OVMF/OVMF32_VARS_4M.fd'] },
  { name: 'AAVMF (aarch64 UEFI)', package: 'qemu-efi-aarch64', files: ['/usr/share/AAVMF/AAVMF_CODE.fd', '/usr/share/AAVMF/AAVMF_VARS.fd'] },
  { name: 'U-Boot for QEMU arm64', package: 'u-boot-qemu', files: ['/usr/lib/u-boot/qemu_arm64/u-boot.bin'] },
  { name: 'SeaBIOS', package: 'seabios', files: ['/usr/share/seabios/bios-256k.bin'] },
];

const QEMU_ARCHES: Record<string, string> = { x86_64: 'qemu-system-x86_64', i386: 'qemu-system-i386', aarch64: 'qemu-system-aarch64', arm: 'qemu-system-arm' };

/** Inspects the host; probes acceleration (cached per host unless `refresh`). */
export async function runDoctor(opts: { refresh?: boolean } = {}): Promise<DoctorReport> {
  const problems: string[] = [];
  const qemu: DoctorReport['qemu'] = {};
  await Promise.all(
    Object.entries(QEMU_ARCHES).map(async ([a, bin]) => {
      const path = which(bin) ?? null;
      const version = path ? ((await execa(path, ['--version'], { reject: false })).stdout.match(/version (\S+)/)?.[1] ?? null) : null;
      qemu[a] = { binary: bin, path, version, package: QEMU_PACKAGES[bin]! };
    }),
  );
  if (!qemu.x86_64?.path) problems.push('qemu-system-x86_64 is missing: apt-get install qemu-system-x86');
  const firmware = FIRMWARE.map((f) => {
    const files = f.files.map((p) => ({ path: p, found: existsSync(p) }));
    return { name: f.name, package: f.package, files, found: files.every((x) => x.found) };
  });
  const tools: DoctorReport['tools'] = {};
  for (const [t, pkg] of Object.entries(TOOL_PACKAGES)) tools[t] = { path: which(t) ?? null, package: pkg };
  if (!tools.setpriv?.path) problems.push('setpriv is missing (util-linux): QEMU would not die with a killed runner');
  const probe = await probeAccel(opts);
  if (!probe.tcg.usable) problems.push(`TCG is not usable: ${probe.tcg.reason}`);
  return {
    host: { arch: arch(), kernel: release(), cores: cpus().length, memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10, node: process.version },
    qemu,
    firmware,
    tools,
    accel: {
      kvm: probe.kvm,
      tcg: probe.tcg,
      hvf: { usable: false, reason: 'hvf exists only on macOS hosts', durationMs: 0 },
      auto: probe.kvm.usable ? 'kvm' : 'tcg',
    },
    problems,
  };
}

/** The report for people. */
export function formatDoctor(r: DoctorReport): string {
  const ok = (b: boolean) => (b ? 'ok ' : 'NO ');
  const lines = [`host: ${r.host.arch}, kernel ${r.host.kernel}, ${r.host.cores} cores, ${r.host.memoryGiB} GiB, node ${r.host.node}`, '', 'QEMU:'];
  for (const [a, q] of Object.entries(r.qemu)) lines.push(`  ${ok(!!q.path)} ${a.padEnd(8)} ${q.path ? `${q.path} ${q.version}` : `missing: apt-get install ${q.package}`}`);
  lines.push('', 'firmware:');
  for (const f of r.firmware) lines.push(`  ${ok(f.found)} ${f.name.padEnd(26)} ${f.found ? f.files.map((x) => x.path).join(', ') : `missing: apt-get install ${f.package}`}`);
  lines.push('', 'tools:');
  for (const [t, x] of Object.entries(r.tools)) lines.push(`  ${ok(!!x.path)} ${t.padEnd(10)} ${x.path ?? `missing: apt-get install ${x.package}`}`);
  lines.push('', 'acceleration (probed by booting a test VM):');
  for (const k of ['kvm', 'tcg', 'hvf'] as const) lines.push(`  ${ok(r.accel[k].usable)} ${k.padEnd(4)} ${r.accel[k].reason}`);
  lines.push(`  machines with accel "auto" use: ${r.accel.auto}`);
  if (r.problems.length) lines.push('', 'problems:', ...r.problems.map((p) => `  - ${p}`));
  return lines.join('\n');
}
