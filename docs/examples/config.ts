// fleetlab.config.ts at the root of a fleet repository.
import { defineConfig } from 'fleetlab';

export default defineConfig({
  paths: ['scenarios'],
  workers: 2,
  retries: 1,
  timeoutScale: 1.5,
  history: 'postgres://fleetlab@ci-db/fleetlab',
  inputs: { site: 'lab-berlin' },
  gate: { failOn: ['new', 'still-failing', 'known-expired'], maxInfraErrors: 1, window: 30 },
  projects: {
    pr: { machine: ['x86_64-direct'], tag: ['smoke'] },
    nightly: { machine: ['x86_64-uefi', 'aarch64-uefi', 't100ta'], repeatEach: 3, warm: true },
  },
});
