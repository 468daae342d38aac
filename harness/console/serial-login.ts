// Logs in on a serial console (getty + login), tolerating kernel messages in between.
import { randomBytes } from 'node:crypto';
import { TestFailure, TimeoutError } from '../errors/fleetlab-error.ts';
import type { Console } from '../protocols/console.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { deadlineFrom } from '../time/deadline.ts';

/** How long a prompt must stand at the end of the output, with nothing after it, before fleetlab types (labgrid and LAVA wait likewise). */
export const PROMPT_QUIET_MS = 400;

/**
 * Waits for a login prompt, sends the user and password and proves that a shell answers.
 * Prompts count only at a quiet end of output, so text that merely contains "login:" or "#" while the guest is
 * still printing is not typed into. Throws TestFailure on "Login incorrect" and a TimeoutError naming the step that hung.
 */
export async function serialLogin(console: Console, machine: string, user: string, password: string, opts?: WaitOptions): Promise<void> {
  const deadline = deadlineFrom(opts, 120_000, `serial login as ${user} on ${machine}`, 'pass { timeout } to login()');
  const wait = { deadline, signal: opts?.signal };
  // Kernel messages can land between "login:" and the cursor, and an old prompt may still be in the
  // buffer: forget what came before, poke with a newline and wait for a fresh prompt; retry until one shows.
  for (;;) {
    console.mark();
    await console.write('\n');
    try {
      await console.expect(/login: *$/, { ...wait, quietMs: PROMPT_QUIET_MS, deadline: deadline.child(5_000, 'login prompt') });
      break;
    } catch (err) {
      if (!(err instanceof TimeoutError) || deadline.expired()) {
        throw deadline.expired() ? timeout(console, machine, 'a login prompt ("login:")', deadline) : err;
      }
    }
  }
  await console.write(`${user}\n`);
  // The prompt, then quiet: a kernel message can land right after "Password: " on the same line (the testbed's boot
  // completing while getty asks), and the prompt stands all the same; login reads the line whatever the kernel printed.
  await console.expect(/Password:/, wait).catch(rethrow(console, machine, 'the "Password:" prompt', deadline));
  await console.expect(/$/, { ...wait, quietMs: PROMPT_QUIET_MS }).catch(rethrow(console, machine, 'the console to be quiet after the "Password:" prompt', deadline));
  await console.write(`${password}\n`);
  // busybox ash follows its prompt with a cursor-position query (ESC[6n); a failed login ends on a new login prompt.
  const outcome = await console
    .expect(/(Login incorrect[\s\S]*)?(?:[#$>] *(?:\x1b\[6n)?|login: *)$/, { ...wait, quietMs: PROMPT_QUIET_MS })
    .catch(rethrow(console, machine, 'a shell prompt or "Login incorrect"', deadline));
  if (outcome[1] || /login: *$/.test(outcome[0])) {
    throw new TestFailure(`Serial login as ${user} on ${machine} failed: the guest said "Login incorrect" (wrong user or password?).`, {
      details: { machine, user, lastLines: console.lastLines(10) },
    });
  }
  // A prompt-like string is not proof: run a command whose answer differs from what the tty echoes.
  const n = randomBytes(2).readUInt16BE(0);
  await console.write(`echo FLOK$((${n}+1))\n`);
  await console.expect(new RegExp(`FLOK${n + 1}\\b`), wait).catch(rethrow(console, machine, 'the shell to answer after login', deadline));
}

function timeout(console: Console, machine: string, awaited: string, deadline: import('../time/deadline.ts').Deadline): TimeoutError {
  return new TimeoutError('test-failure', { awaited, deadline, machine, lastLines: console.lastLines(20) });
}

function rethrow(console: Console, machine: string, awaited: string, deadline: import('../time/deadline.ts').Deadline) {
  return (err: unknown): never => {
    if (err instanceof TimeoutError) throw timeout(console, machine, awaited, deadline);
    throw err;
  };
}
