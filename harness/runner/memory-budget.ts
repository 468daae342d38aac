// What a run's VMs hold of the host's memory, decided before anything boots: a case whose machines the host cannot
// hold is refused with what it needs, instead of letting the kernel's OOM killer end QEMUs (and the tools beside
// them) halfway through. Each VM costs its guest RAM plus QEMU's own (qemuOverheadMiB: QEMU_OVERHEAD_MIB, measured: a
// cold x86_64-direct of 256 MiB holds ~322 MiB RSS; less without a display or with a capped translation cache); a machine restored from a snapshot another machine of its shape made
// maps that snapshot's RAM copy-on-write (harness/qemu/shared-ram.ts) and is counted at CLONE_RAM_SHARE of its guest
// RAM (measured: 42 MiB PSS for a 256 MiB testbed clone; the share leaves room for what a scenario writes).
import { hostMemory } from '../process/usage.ts';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { profileNotRestorable } from '../qemu/warm-restore.ts';
import type { PlannedCase } from './plan.ts';
import type { MachineProfile } from '../qemu/profile.ts';

/** QEMU's own memory per VM beside its guest RAM, in MiB, with a display and TCG's translation cache at its default. */
export const QEMU_OVERHEAD_MIB = 64;
/** Of QEMU_OVERHEAD_MIB: std VGA's video memory (16 MiB, written in every VM), which a profile without a display lacks. */
export const VGA_MIB = 16;
/**
 * Of QEMU_OVERHEAD_MIB: what TCG's translation cache comes to at QEMU's default size (its buffer is 1 GiB and keeps
 * every translation: 28 MiB in a meshed x86 clone); a profile's qemu.tbSizeMiB caps it.
 */
export const TB_DEFAULT_MIB = 32;
/** The part of its guest RAM a machine restored from a shared snapshot is counted at. */
export const CLONE_RAM_SHARE = 0.25;
/** What the host keeps for itself, fleetlab, the switch and the snapshots' page cache, in MiB. */
export const HOST_RESERVE_MIB = 1024;

/** A case's memory need: MiB at most, and of how many VMs, how many of them clones of a snapshot. */
export interface MemoryNeed {
  mib: number;
  vms: number;
  clones: number;
  /** QEMU's own memory per VM (qemuOverheadMiB), the least and the most of its VMs. */
  qemuMiB: [number, number];
}

/**
 * QEMU's own memory beside the guest's RAM for profile `p`: QEMU_OVERHEAD_MIB, less VGA_MIB without a display and
 * less what qemu.tbSizeMiB keeps the translation cache under TB_DEFAULT_MIB (x86_64-micro: 64 - 16 - 16 = 32 MiB;
 * measured: a meshed clone of it holds 41 MiB PSS in all, its guest's pages included).
 */
export function qemuOverheadMiB(p: MachineProfile): number {
  const tb = p.qemu.tbSizeMiB === undefined ? 0 : Math.max(0, TB_DEFAULT_MIB - p.qemu.tbSizeMiB);
  return QEMU_OVERHEAD_MIB - (p.display === 'none' ? VGA_MIB : 0) - tb;
}

/** What case `c`'s VMs need of the host's memory; `warm`: its machines start from snapshots (the first of a shape boots). */
export function caseMemoryNeed(c: PlannedCase, warm: boolean): MemoryNeed {
  const seen = new Set<string>();
  const need: MemoryNeed = { mib: 0, vms: 0, clones: 0, qemuMiB: [Infinity, 0] };
  for (const [role, p] of Object.entries(c.profiles)) {
    if (c.boards?.[role]) continue;
    const shape = `${p.name}/${p.qemu.memoryMiB}`;
    const clone = warm && !profileNotRestorable(p) && seen.has(shape);
    seen.add(shape);
    need.vms++;
    if (clone) need.clones++;
    const qemu = qemuOverheadMiB(p);
    need.qemuMiB = [Math.min(need.qemuMiB[0], qemu), Math.max(need.qemuMiB[1], qemu)];
    need.mib += qemu + (clone ? Math.ceil(p.qemu.memoryMiB * CLONE_RAM_SHARE) : p.qemu.memoryMiB);
  }
  if (!need.vms) need.qemuMiB = [0, 0];
  return need;
}

/** The host's available memory in MiB (MemAvailable: free plus what the kernel can reclaim). */
export function availableMemoryMiB(): number {
  return hostMemory().availableMiB;
}

/**
 * Refuses, before anything boots, a case whose VMs the host cannot hold beside its reserve: a ConfigurationError
 * naming the case, what it needs (for how many VMs, how many restored from snapshots) and what the host has.
 */
export function admitMemory(cases: PlannedCase[], warm: (c: PlannedCase) => boolean, availableMiB = availableMemoryMiB()): void {
  const room = availableMiB - HOST_RESERVE_MIB;
  for (const c of cases) {
    const need = caseMemoryNeed(c, warm(c));
    if (need.mib <= room) continue;
    const how = need.clones ? `, ${need.clones} of them restored from a shared snapshot at ${CLONE_RAM_SHARE * 100} % of their RAM` : warm(c) ? '' : "; with snapshot: 'boot' (or --warm) machines of one shape share their snapshot's RAM";
    throw new ConfigurationError(`${c.file}: scenario ${JSON.stringify(c.scenario.name)} [${c.variant}] needs about ${need.mib} MiB of host memory for its ${need.vms} VMs (guest RAM + ${need.qemuMiB[0] === need.qemuMiB[1] ? need.qemuMiB[0] : need.qemuMiB.join('-')} MiB QEMU each${how}), but this host has ${availableMiB} MiB available and keeps ${HOST_RESERVE_MIB} MiB for itself: give the scenario fewer machines or less memory (machines.<role>.memoryMiB), or run it on a bigger host.`, { details: { file: c.file, field: 'machines', value: need.mib } });
  }
}
