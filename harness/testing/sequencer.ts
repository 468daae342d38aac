// Test file order for a suite of very uneven files on two workers: the longest first (longest-processing-time
// scheduling), so no long file starts last and runs alone. Vitest orders a fresh clone by file size, which put the
// 10-minute update-rollback files (a few lines each) at the very end. Seconds from a fresh clone's npm test of
// 2026-12-06 (2 cores, TCG; kvm-fallback's where KVM works).
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const SECONDS: Record<string, number> = {
  'harness/nixos/update-rollback-x86.test.ts': 605,
  'harness/nixos/update-rollback-arm.test.ts': 518,
  'harness/install/install.test.ts': 424,
  'machines/matrix.test.ts': 274,
  'lab/boards.test.ts': 225,
  'harness/nixos/nix-copy.test.ts': 125,
  'harness/runner/cli-run.test.ts': 102,
  'harness/runner/prepare-images.test.ts': 98,
  'harness/qemu/machine-death.test.ts': 93,
  'harness/runner/checkpoint.test.ts': 88,
  'harness/qemu/warm-start.test.ts': 88,
  'harness/qemu/foreign-guest.test.ts': 88,
  'harness/net/mesh.test.ts': 67,
  'harness/package/package.test.ts': 63,
  'harness/qemu/byo-image.test.ts': 61,
  'harness/net/network.test.ts': 60,
  'harness/install/install-matrix.test.ts': 227,
  'harness/nixos/power-cut.test.ts': 240,
  'harness/qemu/kvm-fallback.test.ts': 86,
  'lab/update-rollback-board.test.ts': 150,
  'lab/leases.test.ts': 25,
  'harness/browser/browser.test.ts': 30,
};

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const weight = (f: TestSpecification) => SECONDS[relative(f.project.config.root, f.moduleId)] ?? 0;
    // Array.prototype.sort is stable: files of equal weight keep vitest's order.
    return [...base].sort((a, b) => weight(b) - weight(a));
  }
}
