import { defineConfig } from 'vitest/config';
import LongestFirst from './harness/testing/sequencer.ts';

// Integration tests boot real QEMU guests under TCG: processes, not threads (QEMU is tied to its
// parent process with PR_SET_PDEATHSIG, which a worker thread's exit would trigger), and generous timeouts.
export default defineConfig({
  test: {
    include: ['harness/**/*.test.ts', 'machines/**/*.test.ts', 'scenarios/**/*.test.ts', 'nix/**/*.test.ts', 'lab/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    // The longest files first: see harness/testing/sequencer.ts.
    sequence: { sequencer: LongestFirst },
    globalSetup: ['harness/testing/global-setup.ts'],
    setupFiles: ['harness/testing/register-testbed.ts'],
  },
});
