// vitest global setup: after the whole suite, no QEMU started by fleetlab may still run.
import { processesMatching } from './processes.ts';

export default function setup() {
  return async () => {
    await new Promise((r) => setTimeout(r, 500));
    const left = processesMatching('process=fleetlab-');
    if (left.length) {
      for (const [pid] of left) process.kill(pid, 'SIGKILL');
      throw new Error(`QEMU processes were left behind by the test suite:\n${left.map(([p, c]) => `  ${p} ${c.slice(0, 160)}`).join('\n')}`);
    }
  };
}
