// Test file order for a suite of very uneven files on two workers: the longest first (longest-processing-time
// scheduling), so no long file starts last and runs alone. Vitest orders a fresh clone by file size, which put the
// 10-minute update-rollback files (a few lines each) at the very end. Seconds from a fresh clone's npm test of
// 72cdcdc, 2026-12-06 (2 cores, TCG; kvm-fallback's where KVM works); files under 20 s keep vitest's order after.
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const SECONDS: Record<string, number> = {
  'harness/nixos/update-rollback-x86.test.ts': 580,
  'harness/nixos/update-rollback-arm.test.ts': 520,
  'harness/install/install.test.ts': 367,
  'machines/matrix.test.ts': 293,
  'harness/nixos/power-cut.test.ts': 268,
  'harness/install/install-matrix.test.ts': 237,
  'lab/boards.test.ts': 191,
  // Measured alone here (2026-12-06): 61 s (smoke on a remote board, ser2net restarted mid-case, the host's sshd).
  'lab/remote-lab.test.ts': 80,
  'lab/health.test.ts': 30,
  'scenarios/ntd.test.ts': 160,
  'harness/nixos/nix-copy.test.ts': 142,
  // Four runs of a one-machine fixture (two recorded, two reruns), estimated from the runs measured alone (~50 s each).
  'harness/history/investigate.test.ts': 200,
  'lab/update-rollback-board.test.ts': 139,
  // Measured alone here (2026-12-06): a board case of 44 s and a VM case of 32 s, one after the other.
  'lab/boot-loader-recovery.test.ts': 90,
  'harness/runner/cli-run.test.ts': 109,
  'harness/shell/systemd.test.ts': 101,
  'harness/runner/checkpoint.test.ts': 99,
  'harness/runner/prepare-images.test.ts': 94,
  'harness/qemu/foreign-guest.test.ts': 81,
  'harness/net/mesh.test.ts': 71,
  // Measured here (2026-12-07) with both modules cached, as setup leaves them: 31 s (the kernel packages unpacked).
  'machines/testbed/batman-adv.test.ts': 31,
  'harness/net/network.test.ts': 69,
  'harness/qemu/warm-start.test.ts': 67,
  'harness/qemu/qemu-machine.test.ts': 64,
  'harness/package/package.test.ts': 61,
  'harness/qemu/byo-image.test.ts': 57,
  'harness/qemu/machine-death.test.ts': 54,
  'harness/shell/shell-variants.test.ts': 49,
  'lab/leases.test.ts': 48,
  'harness/shell/heartbeat.test.ts': 48,
  'harness/browser/browser.test.ts': 44,
  'harness/history/history.test.ts': 40,
  'harness/config/config.test.ts': 30,
  // Measured alone here (2026-12-06): 18 s and 21 s; under a loaded suite about twice that.
  'harness/debug/repl-tmux.test.ts': 40,
  'harness/debug/pause.test.ts': 35,
  'harness/debug/up.test.ts': 20,
  'harness/report/html-report.test.ts': 28,
  'harness/qemu/lifecycle.test.ts': 25,
  'harness/nixos/rollout.test.ts': 25,
  'harness/runner/faults.test.ts': 24,
  // Where KVM works (here it skips): 86 s.
  'harness/qemu/kvm-fallback.test.ts': 86,
};

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const weight = (f: TestSpecification) => SECONDS[relative(f.project.config.root, f.moduleId)] ?? 0;
    // Array.prototype.sort is stable: files of equal weight keep vitest's order.
    return [...base].sort((a, b) => weight(b) - weight(a));
  }
}
