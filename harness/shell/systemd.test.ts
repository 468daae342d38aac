// The systemd API (waitForUnit, systemctl, unit properties, start/stop, --user) against real systemd: the
// x86_64-systemd testbed (Debian bookworm's systemd as PID 1). A busybox-init testbed is told it has no systemd.
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError, TestFailure } from '../errors/fleetlab-error.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import { QemuMachine } from '../qemu/qemu-machine.ts';

const logDir = join(tmpdir(), `fleetlab-test-systemd-${process.pid}`);
let m: QemuMachine;
let plain: QemuMachine;

/** Writes a system unit and reloads systemd. */
async function unit(name: string, body: string): Promise<void> {
  await m.succeed(`cat > /etc/systemd/system/${name} <<'EOF'\n${body}\nEOF\nsystemctl daemon-reload`);
}

beforeAll(async () => {
  m = new QemuMachine(await loadProfile('x86_64-systemd'), { name: 'sd', logDir });
  plain = new QemuMachine(await loadProfile('x86_64-direct'), { name: 'plain', logDir });
  await Promise.all([m.start(), plain.start()]);
  await Promise.all([m.waitForShell({ timeout: 240_000 }), plain.waitForShell({ timeout: 240_000 })]);
}, 300_000);

afterAll(async () => {
  await Promise.all([m?.stop(), plain?.stop()]);
});

describe('systemd on the x86_64-systemd testbed', () => {
  it('waits for multi-user.target and reads units: PID 1 is systemd, the backdoor is a unit', async () => {
    await m.waitForUnit('multi-user.target', { timeout: '3m' });
    expect((await m.succeed('cat /proc/1/comm')).trim()).toBe('systemd');
    await m.requireUnitState('fleetlab-backdoor.service');
    expect(await m.unitProperty('fleetlab-setup.service', 'Type')).toBe('oneshot');
    const info = await m.unitInfo('fleetlab-setup.service');
    expect(info.Id).toBe('fleetlab-setup.service');
    expect(info.ActiveState).toBe('active');
    expect(info.ExecStart).toContain('/etc/fleetlab/rcS');
    await expect(m.requireUnitState('fleetlab-setup.service', 'failed')).rejects.toThrow(/fleetlab-setup.service is active, expected failed\nsystemctl status fleetlab-setup.service:\n/);
    await expect(m.unitProperty('fleetlab-setup.service', 'activestate')).rejects.toThrow(/has no property "activestate".*case-sensitive/);
    const r = await m.systemctl('is-enabled getty@tty1.service');
    expect([r.exitCode, r.stdout.trim()]).toEqual([0, 'enabled']);
    expect((await m.systemctl('is-active no-such-unit.service')).exitCode).not.toBe(0);
  }, 240_000);

  it("machine.nixos.switch() runs switch-to-configuration as nixos-rebuild does: in the nixos-rebuild-switch-to-configuration unit, its exit 4 and failed units kept", async () => {
    const top = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-sd-stc';
    await m.succeed(`mkdir -p ${top}/bin && printf '#!/bin/sh\\necho "cgroup: $(cat /proc/self/cgroup)"\\necho "action $1"\\necho "warning: the following units failed: app.service" >&2\\nexit 4\\n' > ${top}/bin/switch-to-configuration && chmod +x ${top}/bin/switch-to-configuration`);
    for (let i = 0; i < 2; i++) {
      // Twice: --collect leaves no unit behind to take the name from the next switch.
      const r = await m.nixos.switch(top, { action: 'test' });
      expect([r.exitCode, r.ok, r.failedUnits], r.stderr).toEqual([4, false, ['app.service']]);
      expect(r.stdout).toMatch(/cgroup: .*\/nixos-rebuild-switch-to-configuration\.service/);
      expect(r.stdout).toContain('action test');
    }
    // The busybox-init testbed has no systemd: there it runs directly.
    await plain.succeed(`mkdir -p ${top}/bin && printf '#!/bin/sh\\necho "pid1 $(cat /proc/1/comm)"\\n' > ${top}/bin/switch-to-configuration && chmod +x ${top}/bin/switch-to-configuration`);
    const r = await plain.nixos.switch(top, { action: 'test' });
    expect([r.exitCode, r.stdout.trim()]).toEqual([0, 'pid1 init']);
  }, 120_000);

  it("a generation that changes the backdoor unit's inputs: restartIfChanged = false keeps the shell through the switch, other changed units restart", async () => {
    // Two NixOS-shaped toplevels whose backdoor unit differs (its environment: what a new bash or coreutils would
    // change) and is marked as the module marks it (restartIfChanged = false → X-RestartIfChanged=false in [Service]),
    // beside a unit that changes without that mark; the systemd testbed's switch-to-configuration stand-in decides.
    const backdoor = await m.succeed('cat /etc/systemd/system/fleetlab-backdoor.service');
    const gen = async (g: string) => {
      const top = `/nix/store/0123456789abcdfghijklmnpqrsvwx${g}${g}-nixos-system-sd-${g}`;
      const units = `${top}/etc/systemd/system`;
      await m.succeed([
        `mkdir -p ${top}/bin ${units}/multi-user.target.wants`,
        `ln -sfn /usr/lib/fleetlab/switch-to-configuration ${top}/bin/switch-to-configuration`,
        `printf '[Service]\\nEnvironment=GEN=${g}\\nExecStart=/bin/sleep 1000\\n' > ${units}/fl-app.service`,
        `ln -sfn ../fl-app.service ${units}/multi-user.target.wants/fl-app.service`,
      ].join(' && '));
      await m.succeed(`cat > ${units}/fleetlab-backdoor.service <<'EOF'\n${backdoor.trimEnd()}\nEnvironment=FLEETLAB_INPUTS=${g}\nX-RestartIfChanged=false\nEOF`);
      return top;
    };
    const [a, b] = [await gen('a'), await gen('b')];
    const pid = async (u: string) => (await m.unitProperty(u, 'MainPID')).trim();
    const first = await m.nixos.switch(a, { action: 'test' });
    expect(first.exitCode, first.stderr).toBe(0);
    const before = { shell: await pid('fleetlab-backdoor.service'), app: await pid('fl-app.service') };
    expect(before.app).not.toBe('0');
    const r = await m.nixos.switch(b, { action: 'test' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('NOT restarting the following changed units: fleetlab-backdoor.service');
    expect(r.stderr).toMatch(/stopping the following units: .*fl-app\.service/);
    // The shell that ran the switch is the one that answers now; the unmarked unit runs its new definition.
    expect(await pid('fleetlab-backdoor.service')).toBe(before.shell);
    expect((await m.succeed('echo still here')).trim()).toBe('still here');
    expect(await pid('fl-app.service')).not.toBe(before.app);
    expect(await m.succeed("tr '\\0' '\\n' < /proc/$(systemctl show -P MainPID fl-app.service)/environ | grep ^GEN=")).toBe('GEN=b\n');
    await m.succeed('systemctl stop fl-app.service');
  }, 120_000);

  it('waits for a unit that becomes active later, and ends at once for a failed or an inactive one', async () => {
    await unit('fl-slow.service', '[Service]\nExecStartPre=/bin/sleep 4\nExecStart=/bin/sleep 1000');
    await unit('fl-fail.service', '[Service]\nType=oneshot\nExecStart=/bin/sh -c "echo fl-fail says goodbye; exit 3"');
    await unit('fl-idle.service', '[Service]\nExecStart=/bin/sleep 1000');
    await m.succeed('systemctl start --no-block fl-slow.service fl-fail.service');
    let t0 = performance.now();
    await m.waitForUnit('fl-slow.service', { timeout: '60s' });
    expect(performance.now() - t0).toBeGreaterThan(2_000);
    expect(await m.unitProperty('fl-slow.service', 'SubState')).toBe('running');

    t0 = performance.now();
    const failed = await m.waitForUnit('fl-fail.service', { timeout: '2m' }).then(() => undefined, (e: unknown) => e);
    expect(failed).toBeInstanceOf(TestFailure);
    expect((failed as Error).message).toMatch(/^unit fl-fail.service reached state "failed" on sd: it will not become active\nsystemctl status fl-fail.service:\n/);
    // Its journal is in the status.
    expect((failed as Error).message).toContain('fl-fail says goodbye');
    expect(performance.now() - t0).toBeLessThan(30_000);

    t0 = performance.now();
    await expect(m.waitForUnit('fl-idle.service', { timeout: '2m' })).rejects.toThrow(/unit fl-idle.service is inactive and no job is queued on sd/);
    await expect(m.waitForUnit('no-such.service', { timeout: '2m' })).rejects.toThrow(/unit no-such.service is inactive and no job is queued \(LoadState=not-found\)/);
    expect(performance.now() - t0).toBeLessThan(30_000);
  }, 240_000);

  it('starts and stops units, waiting for the job; a failing start says why', async () => {
    await m.startUnit('fl-idle.service');
    await m.requireUnitState('fl-idle.service', 'active');
    await m.stopUnit('fl-idle.service');
    await m.requireUnitState('fl-idle.service', 'inactive');
    await expect(m.startUnit('fl-fail.service')).rejects.toThrow(/systemctl start fl-fail.service failed on sd \(exit 1\)[\s\S]*systemctl status fl-fail.service:[\s\S]*fl-fail says goodbye/);
  }, 120_000);

  it("talks to a user's manager with { user }, as that user", async () => {
    await m.succeed(
      "echo 'alice:x:1000:1000:alice:/home/alice:/bin/bash' >> /etc/passwd && echo 'alice:x:1000:' >> /etc/group && " +
        "echo 'alice:!:19000:0:99999:7:::' >> /etc/shadow && mkdir -p /home/alice/.config/systemd/user && " +
        "printf '[Service]\\nExecStart=/bin/sleep 1000\\n' > /home/alice/.config/systemd/user/fl-hello.service && chown -R 1000:1000 /home/alice",
    );
    // A user manager runs once the user logs in, or when started for them (loginctl enable-linger does the same).
    await m.startUnit('user@1000.service');
    await m.waitForUnit('default.target', { user: 'alice', timeout: '2m' });
    await m.startUnit('fl-hello.service', { user: 'alice' });
    await m.requireUnitState('fl-hello.service', 'active', { user: 'alice' });
    const pid = await m.unitProperty('fl-hello.service', 'MainPID', { user: 'alice' });
    expect((await m.succeed(`stat -c %u /proc/${pid}`)).trim()).toBe('1000');
    // The system manager has no such unit: the two are apart.
    await expect(m.waitForUnit('fl-hello.service', { timeout: '1m' })).rejects.toThrow(/LoadState=not-found/);
    await expect(m.waitForUnit('fl-nothing.service', { user: 'alice', timeout: '1m' })).rejects.toThrow(/unit fl-nothing.service \(user alice's manager\) is inactive/);
  }, 240_000);
});

describe('virtual consoles and reboots', () => {
  it('reads tty1 from /dev/vcs1: its login prompt, then what a login typed on the keyboard shows', async () => {
    await m.waitUntilTtyMatches(1, /^sd login: /m, { timeout: '1m' });
    const text = await m.ttyText(1);
    // A line per screen row, each as wide as the console (the framebuffer console's columns).
    const [rows, cols] = (await m.succeed('stty -F /dev/tty1 size')).trim().split(' ').map(Number);
    expect(text.split('\n').filter(Boolean).map((l) => l.length)).toEqual(Array(rows).fill(cols));
    await m.screen!.typeText('root\n');
    await m.waitUntilTtyMatches(1, 'Password: ', { literal: true, timeout: '1m' });
    await m.screen!.typeText('fleetlab\n');
    // root's shell prompt (bash as sh): logged in on tty1.
    await m.waitUntilTtyMatches(1, /^-?sh-[0-9.]+# *$/m, { timeout: "1m" });
    await m.waitUntilSucceeds('pgrep -t tty1 -u root -x sh', { timeout: '30s' });
    await m.screen!.typeText('echo tty-$((6*7))\n');
    await m.waitUntilTtyMatches(1, /^tty-42 *$/m, { timeout: '1m' });
    const err = await m.waitUntilTtyMatches(1, 'never shown', { timeout: '2s' }).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).toMatch(/tty1 to show \/never shown\/ \(its last non-blank rows: .*"tty-42"/s);
    await expect(m.ttyText(0)).rejects.toThrow(/a number from 1 to 63/);
  }, 180_000);

  it('switching to tty2 (Alt-F2) makes logind start its getty there, as on NixOS', async () => {
    await m.fail("pgrep -f 'agetty.*tty2'");
    await m.screen!.sendKeys('alt-f2');
    await m.waitUntilSucceeds('[ "$(cat /sys/class/tty/tty0/active)" = tty2 ]', { timeout: '30s' });
    await m.waitForUnit('getty@tty2.service', { timeout: '1m' });
    await m.waitUntilTtyMatches(2, /^sd login: /m, { timeout: '1m' });
  }, 180_000);

  it("reboot({ via: 'ctrl-alt-del' }) presses the keys and systemd reboots; via 'reset' is the reset button", async () => {
    const before = await m.bootId();
    const boots = m.boots;
    await m.screen!.sendKeys('ctrl-alt-f1');
    expect(await m.reboot({ via: 'ctrl-alt-del', timeout: '4m' })).toBe(boots + 1);
    expect(await m.bootId()).not.toBe(before);
    // An orderly reboot: systemd went through its shutdown (the console shows reboot.target's jobs).
    expect(await readFile(m.log.path, 'utf8')).toMatch(/Reached target .*reboot\.target|Reached target .*System Reboot/);
    const plainBefore = await plain.bootId();
    expect(await plain.reboot({ via: 'reset', timeout: '2m' })).toBe(2);
    expect(await plain.bootId()).not.toBe(plainBefore);
  }, 420_000);
});

describe('a guest without systemd', () => {
  it('is told so at once, naming its init', async () => {
    const err = await plain.waitForUnit('multi-user.target', { timeout: '1m' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toMatch(/^plain does not run systemd \(its PID 1 is "init"; no \/run\/systemd\/system\).*profile x86_64-systemd/);
    await expect(plain.systemctl('status')).rejects.toThrow(/does not run systemd/);
  }, 60_000);
});

describe('a guest that powers itself off (the last tests: both machines end here)', () => {
  it('isUp() while it answers; waitForShutdown() after systemctl poweroff, which then is no death; a short wait times out', async () => {
    const died: string[] = [];
    m.on('died', (r: string) => died.push(r));
    expect(await m.isUp()).toBe(true);
    await expect(m.waitForShutdown({ timeout: '2s' })).rejects.toThrow(/sd to power itself off \(QEMU to exit\)/);
    await m.execute('systemctl --no-block poweroff');
    await m.waitForShutdown({ timeout: '3m' });
    expect(m.state).toBe('stopped');
    expect(await m.isUp()).toBe(false);
    expect(died).toEqual([]);
    expect(await readFile(m.log.path, 'utf8')).toMatch(/reboot: Power down/);
  }, 300_000);

  it('waitForShutdown() after the guest already powered off counts it', async () => {
    await plain.execute('(sleep 1; poweroff -f) >/dev/null 2>&1 &');
    const t0 = Date.now();
    while (plain.state !== 'stopped' && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 200));
    expect(plain.state).toBe('stopped');
    await plain.waitForShutdown({ timeout: '10s' });
    expect(await plain.isUp()).toBe(false);
  }, 180_000);
});
