// The shell channel's heartbeats and silence limit, on this host's own shells (busybox ash, dash, bash: the shells
// guests have), spoken to over pipes as a serial line carries them: while a command runs with a silence limit the
// guest side sends a heartbeat, so a quiet command is not a hung machine; a machine that stops altogether (every
// process of the shell frozen, as a kernel that locked up) is told within the limit and ends the wait.
// The helper keeps its files in /tmp/.fleetlab (a guest's): the shells here run one at a time.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { MachineDied } from '../qemu/machine-end.ts';
import { Lifeline } from '../time/lifeline.ts';
import { BackdoorShell } from './backdoor-shell.ts';

const shells = [
  { shell: 'busybox ash', argv: ['busybox', 'sh'], watchdog: true },
  { shell: 'dash', argv: ['dash'], watchdog: false },
  { shell: 'bash', argv: ['bash'], watchdog: true },
] as const;

interface HostShell {
  proc: ChildProcess;
  channel: BackdoorShell;
  life: Lifeline;
  /** NUL bytes the channel carried so far (heartbeats; no answer here holds one). */
  nuls: () => number;
  silent: Array<{ ms: number; at: number }>;
}

let current: HostShell | undefined;

afterEach(() => {
  if (current?.proc.pid) {
    try {
      process.kill(-current.proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  current = undefined;
  rmSync('/tmp/.fleetlab', { recursive: true, force: true });
});

/** A shell on this host that greets as the backdoor does, behind a BackdoorShell with `limitMs` (or no limit). */
async function hostShell(argv: readonly string[], limitMs?: number): Promise<HostShell> {
  // Its own process group, so the test can freeze all of it at once.
  const proc = spawn(argv[0]!, [...argv.slice(1), '-c', `printf "Spawning backdoor %s\\n" "root shell..."; exec ${argv.join(' ')} -s`], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
  let nuls = 0;
  proc.stdout!.on('data', (b: Buffer) => {
    for (const byte of b) if (byte === 0) nuls++;
  });
  const life = new Lifeline();
  const silent: HostShell['silent'] = [];
  const channel = new BackdoorShell('host-sh', {
    lastLines: () => [],
    note: () => undefined,
    life: () => life,
    silence: limitMs === undefined ? undefined : { limitMs, onSilent: (ms) => (silent.push({ ms, at: performance.now() }), life.finish(new MachineDied('host-sh', `silent for ${ms} ms`, undefined, () => [], undefined))) },
  });
  const duplex = Duplex.from({ readable: proc.stdout!, writable: proc.stdin! });
  duplex.on('error', () => undefined); // the shell killed at the end of a test
  channel.attach(duplex as unknown as Socket);
  current = { proc, channel, life, nuls: () => nuls, silent };
  await channel.waitReady({ timeout: 20_000 });
  return current;
}

/** The processes of the session `sid` (the shell spawned detached leads its own), but its leader, by command name. */
function sessionMembers(sid: number): string[] {
  const names: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === sid) continue;
    try {
      // pid (comm) state ppid pgrp session: a zombie counts too (this host's init reaps orphans late).
      const m = /^\d+ \((.*)\) \S \d+ \d+ (\d+)/.exec(readFileSync(`/proc/${d}/stat`, 'utf8'));
      if (m && Number(m[2]) === sid) names.push(m[1]!);
    } catch {
      // gone meanwhile
    }
  }
  return names;
}

describe.each(shells)('heartbeats on $shell', ({ argv, watchdog }) => {
  it('a quiet command under an 8 s limit runs 7 s: a heartbeat every 2 s, no silence, none left behind', async () => {
    const sh = await hostShell(argv, 8000);
    const before = sh.nuls();
    const r = await sh.channel.execute('sleep 7; echo done', { timeout: 30_000 });
    expect(r).toMatchObject({ exitCode: 0, stdout: 'done\n' });
    // One every quarter of the limit, the first 2 s in: at 2, 4 and 6 s (the last may miss on a busy host).
    expect(sh.nuls() - before).toBeGreaterThanOrEqual(2);
    expect(sh.nuls() - before).toBeLessThanOrEqual(3);
    expect(sh.silent).toEqual([]);
    // The heartbeat's subshell (and dash's sleep, which would sleep on for up to 2 s) are gone, orphans included
    // (they keep the session): only the guest watchdog stays, on shells with read -t. The answer's own `head` may
    // take a moment to exit after its last byte.
    const want = watchdog ? [argv[0]] : [];
    for (let i = 0; i < 10 && JSON.stringify(sessionMembers(sh.proc.pid!)) !== JSON.stringify(want); i++) await new Promise((r) => setTimeout(r, 50));
    expect(sessionMembers(sh.proc.pid!)).toEqual(want);
    // The channel stays in step: answers after heartbeats are whole.
    expect((await sh.channel.execute('printf "%s" abc')).stdout).toBe('abc');
  }, 60_000);

  it('a shell frozen mid-command is told within the limit and the wait ends with it', async () => {
    const sh = await hostShell(argv, 4000);
    const running = sh.channel.execute('sleep 60', { timeout: 120_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const frozenAt = performance.now();
    process.kill(-sh.proc.pid!, 'SIGSTOP');
    const err = (await running.catch((e: unknown) => e)) as Error;
    const took = performance.now() - frozenAt;
    expect(err.message).toMatch(/^Machine host-sh died while fleetlab waited for the guest shell to answer command: sleep 60: silent for [\d.]+ ms/);
    expect(sh.silent).toHaveLength(1);
    expect(sh.silent[0]!.ms).toBeGreaterThan(4000);
    // Silent since the last heartbeat (up to a second before the freeze), told at the next check (every second).
    expect(took).toBeGreaterThan(2900);
    expect(took).toBeLessThan(6500);
  }, 60_000);

  it('without a limit no heartbeat is sent', async () => {
    const sh = await hostShell(argv);
    const before = sh.nuls();
    await sh.channel.execute('sleep 3', { timeout: 30_000 });
    expect(sh.nuls() - before).toBe(0);
  }, 60_000);
});
