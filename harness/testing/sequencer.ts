// Test file order for a suite of very uneven files on two workers: the longest first (longest-processing-time
// scheduling), so no long file starts last and runs alone. Vitest orders a fresh clone by file size, which put the
// 10-minute update-rollback files (a few lines each) at the very end. Seconds from CI's run of 2026-11-22 (2 cores).
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const SECONDS: Record<string, number> = {
  'harness/nixos/update-rollback-x86.test.ts': 600,
  'harness/nixos/update-rollback-arm.test.ts': 540,
  'harness/nixos/power-cut.test.ts': 240,
  'machines/matrix.test.ts': 193,
  'harness/qemu/kvm-fallback.test.ts': 86,
  'harness/net/mesh.test.ts': 79,
  'harness/qemu/foreign-guest.test.ts': 73,
  'harness/runner/cli-run.test.ts': 72,
  'harness/runner/checkpoint.test.ts': 65,
  'harness/qemu/warm-start.test.ts': 66,
  'harness/package/package.test.ts': 30,
  'lab/boards.test.ts': 145,
  'lab/update-rollback-board.test.ts': 150,
  'lab/leases.test.ts': 25,
  'harness/browser/browser.test.ts': 30,
  'harness/install/install.test.ts': 260,
  'harness/install/install-matrix.test.ts': 290,
};

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const weight = (f: TestSpecification) => SECONDS[relative(f.project.config.root, f.moduleId)] ?? 0;
    // Array.prototype.sort is stable: files of equal weight keep vitest's order.
    return [...base].sort((a, b) => weight(b) - weight(a));
  }
}
