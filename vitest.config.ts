import { defineConfig } from 'vitest/config';
import LongestFirst from './harness/testing/sequencer.ts';

/**
 * The matrix tier: long runs of one behaviour across every boot loader and cut point. scripts/test.sh runs the suite
 * (everything else) first, then these, then the fleet tier; FLEETLAB_TEST_TIER picks one (unset: all files).
 */
const MATRIX = ['harness/nixos/update-rollback-x86.test.ts', 'harness/nixos/update-rollback-arm.test.ts', 'harness/nixos/power-cut.test.ts', 'harness/install/install-matrix.test.ts', 'lab/update-rollback-board.test.ts', 'lab/boot-loader-recovery.test.ts'];
/**
 * The fleet tier: dozens of guests at once (scenarios/fleet-mesh.ts's 16-node fleets). Beside another file's guests
 * both starve (measured: a 16-node fleet's restores ran out of time and a pause test missed its 20 s), so it runs
 * last and alone.
 */
const FLEET = ['harness/net/fleet.test.ts'];
const ALL = ['harness/**/*.test.ts', 'machines/**/*.test.ts', 'scenarios/**/*.test.ts', 'nix/**/*.test.ts', 'lab/**/*.test.ts', 'docs/**/*.test.ts'];
const tier = process.env.FLEETLAB_TEST_TIER;

// Integration tests boot real QEMU guests under TCG: processes, not threads (QEMU is tied to its
// parent process with PR_SET_PDEATHSIG, which a worker thread's exit would trigger), and generous timeouts.
export default defineConfig({
  test: {
    include: tier === 'matrix' ? MATRIX : tier === 'fleet' ? FLEET : ALL,
    exclude: tier === 'suite' ? [...MATRIX, ...FLEET, '**/node_modules/**'] : ['**/node_modules/**'],
    pool: 'forks',
    maxWorkers: tier === 'fleet' ? 1 : 2,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    // The longest files first: see harness/testing/sequencer.ts.
    sequence: { sequencer: LongestFirst },
    globalSetup: ['harness/testing/global-setup.ts'],
    setupFiles: ['harness/testing/register-testbed.ts'],
  },
});
