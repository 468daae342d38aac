// Connecting to a unix socket that a child process (QEMU) is about to listen on.
import { createConnection, type Socket } from 'node:net';
import { InfrastructureError } from '../errors/fleetlab-error.ts';
import { sleep, type Deadline } from '../time/deadline.ts';

/**
 * Connects to `path`. The socket file appears at bind(), a moment before the listener's listen(), so "refused" and
 * "missing" are retried every 20 ms until `deadline`; other errors and the deadline throw an InfrastructureError.
 */
export async function connectUnix(path: string, deadline: Deadline, signal?: AbortSignal): Promise<Socket> {
  for (;;) {
    try {
      return await connectOnce(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || deadline.expired()) {
        throw new InfrastructureError(`cannot connect to ${path}: ${(err as Error).message}${deadline.expired() ? ` (retried for ${deadline.describe()})` : ''}`, { cause: err });
      }
      await sleep(20, { deadline, signal });
    }
  }
}

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    });
    s.once('error', reject);
  });
}
