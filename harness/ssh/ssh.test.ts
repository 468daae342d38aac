// SSH into a real testbed guest (dropbear, key authentication) through the restricted 127.0.0.1 forward: host keys
// pinned and checked, reconnect across a reboot, a changed key caught, the machine's death ending a command.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError, FleetlabError, TestFailure } from '../errors/fleetlab-error.ts';
import { loadProfile } from '../qemu/profile-loader.ts';
import { QemuMachine } from '../qemu/qemu-machine.ts';

let m: QemuMachine;

beforeAll(async () => {
  m = new QemuMachine(await loadProfile('x86_64-direct'), { name: 'sshtest', hostLink: true, logDir: join(tmpdir(), `fleetlab-test-ssh-${process.pid}`) });
  await m.start();
  await m.waitForShell({ timeout: 120_000 });
}, 180_000);

afterAll(async () => {
  await m?.stop();
});

describe('machine.ssh()', () => {
  it("connects with the testbed's key, checks the testbed's host key, and gives the Shell helpers", async () => {
    const ssh = await m.ssh({ timeout: 60_000 });
    expect(ssh.hostKey).toMatch(/^ssh-ed25519 AAAA/);
    expect((await ssh.succeed('id -u')).trim()).toBe('0');
    await expect(ssh.succeed('exit 4')).rejects.toThrow(/exited with 4/);
    ssh.close();
  });

  it('reconnects after a reboot: the same host key is accepted', async () => {
    await m.reboot({ timeout: 120_000 });
    const ssh = await m.ssh({ timeout: 60_000 });
    expect((await ssh.succeed('hostname')).trim()).toBe('sshtest');
    ssh.close();
  });

  it('a changed host key is a test failure, unless the scenario expects it', async () => {
    // The guest's server starts over with a key of its own (dropbear -R makes one): as after a reinstall.
    await m.succeed('kill $(pidof dropbear); rm /etc/dropbear/dropbear_ed25519_host_key; sleep 0.3; /usr/sbin/dropbear -s -R -p 22');
    const err = (await m.ssh({ timeout: 30_000 }).catch((e: unknown) => e)) as FleetlabError;
    expect(err).toBeInstanceOf(TestFailure);
    expect(err.message).toMatch(/^The SSH host key of sshtest changed: expected ssh-ed25519 /);
    expect(err.message).toContain('pass { expectNewHostKey: true } to ssh()');
    const ssh = await m.ssh({ timeout: 30_000, expectNewHostKey: true });
    expect((await ssh.succeed('echo accepted')).trim()).toBe('accepted');
    ssh.close();
    // The new key is pinned from now on.
    (await m.ssh({ timeout: 30_000 })).close();
  });

  it('a key the server does not accept ends in a timeout naming the target, not a hang', async () => {
    const { utils } = await import('ssh2');
    const other = utils.generateKeyPairSync('ed25519').private;
    const t0 = performance.now();
    const err = (await m.ssh({ timeout: 5000, privateKey: Buffer.from(other) }).catch((e: unknown) => e)) as Error;
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(err.message).toMatch(/an SSH session with root@127\.0\.0\.1:\d+ \(sshtest\)/);
  });

  it("the machine's death ends an SSH command at once", async () => {
    const ssh = await m.ssh({ timeout: 30_000 });
    const pending = ssh.execute('sleep 60').catch((e: unknown) => e as FleetlabError);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    process.kill(m.pid!, 'SIGKILL');
    const err = (await pending) as FleetlabError;
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.message).toMatch(/^Machine sshtest died while fleetlab waited for SSH command sleep 60/);
  });

  it('without ssh: true there is no forward, and ssh() says how to get one', async () => {
    const plain = await QemuMachine.fromProfile('x86_64-direct', { name: 'nossh' });
    await expect(plain.ssh()).rejects.toThrow(ConfigurationError);
    await expect(plain.ssh()).rejects.toThrow(/declare ssh: true \(or hostLink: true\) in the scenario/);
    await plain.stop();
  });
});
