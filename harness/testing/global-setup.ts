// vitest global setup: after the whole suite, no QEMU started by this test run may still run. The run is tagged in
// the environment its workers (and so their QEMUs) inherit, so another suite running on the same host is left alone.
import { randomBytes } from 'node:crypto';
import { processesMatching } from './processes.ts';

export default function setup() {
  const tag = `FLEETLAB_TEST_RUN=${randomBytes(6).toString('hex')}`;
  process.env.FLEETLAB_TEST_RUN = tag.split('=')[1];
  return async () => {
    await new Promise((r) => setTimeout(r, 500));
    const left = processesMatching('process=fleetlab-', { environ: tag });
    if (left.length) {
      for (const [pid] of left) process.kill(pid, 'SIGKILL');
      throw new Error(`QEMU processes were left behind by the test suite:\n${left.map(([p, c]) => `  ${p} ${c.slice(0, 160)}`).join('\n')}`);
    }
  };
}
