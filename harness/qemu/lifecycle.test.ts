// Power and lifecycle of a real QEMU machine: reboot, crash and restart, clean shutdown.
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../testing/processes.ts';
import { QemuMachine } from './qemu-machine.ts';
import { QmpCommandError } from './qmp.ts';

let m: QemuMachine;

beforeAll(async () => {
  m = await QemuMachine.fromProfile('x86_64-direct', { name: 'lifecycle', logDir: join(tmpdir(), `fleetlab-test-${process.pid}`) });
  await m.start();
  await m.waitForShell({ timeout: 120_000 });
});

afterAll(async () => {
  await m?.stop();
});

describe('machine lifecycle', () => {
  it('records the accelerator it used and why', () => {
    expect(m.facts?.accel).toMatch(/^(kvm|tcg)$/);
    expect(m.facts?.accelReason).toBeTruthy();
    expect(m.facts?.qemuVersion).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('QMP answers commands and its errors carry the QMP error class', async () => {
    const status = await m.requireQmp('query-status').execute<{ status: string }>('query-status');
    expect(status.status).toBe('running');
    const err = await m.requireQmp('test').execute('no-such-qmp-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpCommandError);
    expect((err as QmpCommandError).errorClass).toBe('CommandNotFound');
    expect((err as Error).message).toContain('no-such-qmp-command');
  });

  it('reboot is detected by a new boot id and a higher boot count', async () => {
    const id1 = await m.bootId();
    const boots1 = m.boots;
    const boots2 = await m.reboot({ timeout: 180_000 });
    expect(boots2).toBe(boots1 + 1);
    const id2 = await m.bootId();
    expect(id2).toMatch(/^[0-9a-f-]{36}$/);
    expect(id2).not.toBe(id1);
  });

  it("reboot goes down through the testbed's shutdown agent, without busybox init's pauses; without the agent, init's way", async () => {
    // The agent (/etc/fleetlab/linuxrc) takes busybox reboot's signal; init's shutdown action then ends the processes
    // and reboots at once: busybox init's "Sent SIGTERM/SIGKILL to all processes" (a second's pause after each) never
    // comes. With the agent gone, reboot signals init as before, and the machine still comes back.
    const since = async (from: number) => (await readFile(m.log.path, 'utf8')).slice(from);
    let from = (await readFile(m.log.path, 'utf8')).length;
    expect((await m.succeed('pidof linuxrc')).trim()).toMatch(/^\d+$/);
    let boots = m.boots;
    expect(await m.reboot({ timeout: 180_000 })).toBe(boots + 1);
    let log = await since(from);
    expect(log).toContain('fleetlab testbed: lifecycle shutting down');
    expect(log).toContain('reboot: Restarting system');
    expect(log).not.toContain('Sent SIGTERM to all processes');
    from = (await readFile(m.log.path, 'utf8')).length;
    // SIGKILL: SIGTERM would be a reboot request (busybox's own signal). Until init has reaped it, reboot would still
    // find the agent by name and signal it.
    await m.succeed('kill -KILL $(pidof linuxrc); while pidof linuxrc >/dev/null; do sleep 0.1; done', { timeout: 30_000 });
    boots = m.boots;
    expect(await m.reboot({ timeout: 180_000 })).toBe(boots + 1);
    log = await since(from);
    expect(log).toContain('Sent SIGKILL to all processes');
    expect(log).toContain('reboot: Restarting system');
  });

  it('crash stops QEMU at once; start boots it again', async () => {
    const pid = m.pid!;
    const id1 = await m.bootId();
    await m.crash();
    expect(m.state).toBe('stopped');
    expect(pidAlive(pid)).toBe(false);
    await expect(m.execute('true')).rejects.toThrow(/closed|not running/);
    await m.start();
    await m.waitForShell({ timeout: 120_000 });
    expect(m.pid).not.toBe(pid);
    expect(await m.bootId()).not.toBe(id1);
  });

  it('shutdown powers off cleanly through the guest', async () => {
    const pid = m.pid!;
    const from = (await readFile(m.log.path, 'utf8')).length;
    await m.shutdown({ timeout: 60_000 });
    expect(m.state).toBe('stopped');
    expect(pidAlive(pid)).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    const log = (await readFile(m.log.path, 'utf8')).slice(from);
    expect(log).toContain('fleetlab testbed: lifecycle shutting down');
    expect(log).toMatch(/reboot: Power down|guest shutdown \(guest-shutdown\)/);
    expect(log, 'powered off through the shutdown agent').not.toContain('Sent SIGTERM to all processes');
  });
});
