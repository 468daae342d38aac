// A machine's death ends every wait on it: SIGKILL of QEMU during boot, a command, reboot(), a serial login and
// shutdown(); QMP closed under the machine; a kernel panic. Each wait ends within 5 s with an error that names the
// machine, what was awaited, how QEMU ended and the last console lines. Real QEMU, one machine restarted per fault.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { FleetlabError } from '../errors/fleetlab-error.ts';
import { pidAlive } from '../testing/processes.ts';
import { QemuMachine } from './qemu-machine.ts';

const m = await QemuMachine.fromProfile('x86_64-direct', { name: 'deathtest', logDir: join(tmpdir(), `fleetlab-test-death-${process.pid}`) });

async function booted(): Promise<void> {
  if (m.state === 'running') return;
  await m.start();
  await m.waitForShell({ timeout: 120_000 });
}

/** Runs `wait`, kills QEMU with SIGKILL `afterMs` later, and returns the error and how long after the kill it came. */
async function killDuring(wait: () => Promise<unknown>, afterMs: number): Promise<{ err: FleetlabError; ms: number; pid: number }> {
  const pid = m.pid!;
  const pending = wait().then(
    () => undefined,
    (e: unknown) => e,
  );
  await new Promise((r) => setTimeout(r, afterMs));
  const killedAt = performance.now();
  process.kill(pid, 'SIGKILL');
  const err = await pending;
  const ms = performance.now() - killedAt;
  expect(err, 'the wait must fail, not succeed').toBeInstanceOf(FleetlabError);
  return { err: err as FleetlabError, ms, pid };
}

function expectDeath(e: { err: FleetlabError; ms: number; pid: number }, awaited: RegExp): void {
  expect(e.ms).toBeLessThan(5000);
  expect(e.err.kind).toBe('infrastructure');
  expect(e.err.message).toMatch(/^Machine deathtest died while fleetlab waited for /);
  expect(e.err.message).toMatch(awaited);
  expect(e.err.message).toContain('signal SIGKILL');
  expect(e.err.message).toMatch(/Last \d+ console lines:/);
  expect(pidAlive(e.pid)).toBe(false);
  expect(m.state).toBe('stopped');
}

afterAll(async () => {
  await m.stop();
});

describe('a machine that dies ends every wait on it', () => {
  beforeEach(async () => {
    await booted();
  }, 180_000);

  it('during boot: waitForShell', async () => {
    await m.crash();
    await m.start();
    expectDeath(await killDuring(() => m.waitForShell({ timeout: 120_000 }), 300), /backdoor root shell/);
  });

  it('during a command', async () => {
    expectDeath(await killDuring(() => m.execute('sleep 60', { timeout: 120_000 }), 500), /command: sleep 60/);
  });

  it('during reboot()', async () => {
    expectDeath(await killDuring(() => m.reboot({ timeout: 120_000 }), 300), /reboot|shell/);
  });

  it('during a serial login', async () => {
    expectDeath(await killDuring(() => m.login('root', 'fleetlab', { timeout: 120_000 }), 200), /console serial0/);
  });

  it('during shutdown()', async () => {
    expectDeath(await killDuring(() => m.shutdown({ timeout: 120_000 }), 50), /a clean shutdown/);
  });

  it('a wait that starts after the death fails at once, naming the death', async () => {
    const pid = m.pid!;
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    const err = (await m.waitForConsoleText(/never/, { timeout: 60_000 }).catch((e: unknown) => e)) as Error;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.message).toMatch(/^Machine deathtest died while fleetlab waited for console serial0/);
  });

  it('QMP closed under the machine: waits end and QEMU is stopped', async () => {
    const pid = m.pid!;
    const pending = m.execute('sleep 60', { timeout: 120_000 }).then(
      () => undefined,
      (e: unknown) => e as FleetlabError,
    );
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    m.requireQmp('the test').close();
    const err = (await pending)!;
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.kind).toBe('infrastructure');
    expect(err.message).toMatch(/QMP connection closed while QEMU still ran/);
    for (let i = 0; i < 50 && (pidAlive(pid) || m.state !== 'stopped'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(pidAlive(pid)).toBe(false);
    expect(m.state).toBe('stopped');
  });

  it('a kernel panic in the scenario body fails the wait at once as a test failure, with the panic lines', async () => {
    const t0 = performance.now();
    const err = (await m.execute('echo c > /proc/sysrq-trigger', { timeout: 120_000 }).catch((e: unknown) => e)) as FleetlabError;
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.kind).toBe('test-failure');
    expect(err.message).toMatch(/^Console check "kernel-panic" fired on deathtest: console serial0 shows a kernel panic/);
    expect(err.message).toMatch(/Kernel panic - not syncing: sysrq triggered crash/);
    // Every later wait on this life of the machine fails the same way, at once.
    await expect(m.execute('true')).rejects.toThrow(/Console check "kernel-panic"/);
    await m.crash();
  });

  it('expectPanic: a panic provoked on purpose is the expected outcome, and the machine comes back', async () => {
    const hit = await m.expectPanic(() => m.execute('echo c > /proc/sysrq-trigger'), { timeout: 60_000 });
    expect(hit.line).toMatch(/Kernel panic - not syncing/);
    // panic=-1: the guest reboots by itself; its shell answers again.
    await m.waitForShell({ timeout: 120_000 });
    expect((await m.succeed('echo back')).trim()).toBe('back');
  });

  it('a guest reset in the middle of an answer fails that command at once, and the next boot\'s shell takes the helper again', async () => {
    await booted();
    await m.succeed('head -c 16000000 /dev/zero | tr "\\0" x > /tmp/big');
    const boots = m.boots;
    const t0 = performance.now();
    // The answer (16 MB) goes in 64 KiB chunks, each sent by a dd of the channel's helper: a background job resets the
    // guest (sysrq b) as soon as it sees one, so the reset comes while the answer streams. It looks without pausing:
    // a dd lives only while its chunk is written, and with a pause between looks a fast host's whole answer slipped by.
    const watcher = 'i=0; while [ $i -lt 100000 ]; do pidof dd >/dev/null && echo b > /proc/sysrq-trigger; i=$((i+1)); done';
    const err = (await m.execute(`(${watcher}) >/dev/null 2>&1 & cat /tmp/big`, { timeout: 120_000 }).catch((e: unknown) => e)) as FleetlabError;
    expect(err).toBeInstanceOf(FleetlabError);
    expect(err.message).toMatch(/the guest deathtest reset \(rebooted\) while running/);
    expect(performance.now() - t0).toBeLessThan(30_000);
    // A fresh shell, set up anew: commands work again (before, they went to a shell without fleetlab's helper).
    await m.waitForShell({ timeout: 120_000 });
    expect((await m.succeed('echo back')).trim()).toBe('back');
    expect(m.boots).toBe(boots + 1);
  });

  it('expectPanic fails when no panic comes', async () => {
    await expect(m.expectPanic(() => m.execute('true'), { timeout: 10_000 })).rejects.toThrow(/Expected console check "kernel-panic" to match on deathtest while the step ran/);
  });
});
