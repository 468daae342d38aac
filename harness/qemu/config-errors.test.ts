// Bad input gets a configuration error that names the file, field or value and what to install or change.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { loadProfile, validateProfile } from './profile-loader.ts';
import { extendProfile } from './profile.ts';
import { QemuMachine } from './qemu-machine.ts';
import base from '../../machines/x86_64-direct.ts';

describe('configuration errors', () => {
  it('an unknown profile names the profile and lists the known ones', async () => {
    const err = await loadProfile('no-such-board').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toContain('"no-such-board"');
    expect((err as Error).message).toContain('x86_64-direct');
  });

  it('a console check pattern that is no regular expression names its field', () => {
    const bad = extendProfile(base, { name: 'badcheck', consoleChecks: { add: [{ name: 'mine', pattern: 'unclosed(' }] } });
    const err = (() => {
      try {
        validateProfile(bad, 'machines/badcheck.ts');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).toMatch(/machines\/badcheck\.ts is invalid:\n {2}- consoleChecks\.add\.0\.pattern: not a regular expression/);
  });

  it('an invalid profile file names the file and the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-prof-'));
    const file = join(dir, 'broken.ts');
    await writeFile(file, `export default { name: 'broken', arch: 'sparc', qemu: { binary: 'qemu-system-x86_64', machine: 'q35', memoryMiB: 'lots' }, boot: { kind: 'disk' }, consoles: [{ name: 'serial0', device: 'serial' }], serialConsole: 'nope', guest: { shell: { kind: 'none' } } };\n`);
    const err = await loadProfile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    const msg = (err as Error).message;
    expect(msg).toContain(file);
    expect(msg).toMatch(/arch: .*x86_64/);
    expect(msg).toContain('qemu.memoryMiB');
  });

  it('cross-field mistakes name the field: a serial console or shell console the profile does not have', () => {
    const bad = extendProfile(base, { name: 'badref', serialConsole: 'ttyUSB9', guest: { shell: { kind: 'backdoor', console: 'serial0' } } });
    expect(() => validateProfile(bad, 'machines/badref.ts')).toThrow(/machines\/badref\.ts[\s\S]*serialConsole: names no console[\s\S]*guest\.shell\.console: the backdoor shell runs on a virtconsole/);
  });

  it('a missing QEMU binary names the Debian package to install', async () => {
    const p = validateProfile(extendProfile(base, { name: 'nobin', qemu: { binary: '/nonexistent/qemu-system-x86_64' } }), 'test');
    const err = await new QemuMachine(p).start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toContain('/nonexistent/qemu-system-x86_64');
    expect((err as Error).message).toContain('apt-get install qemu-system-x86');
  });

  it('missing firmware names the file and the Debian package', async () => {
    const p = validateProfile(
      extendProfile(base, { name: 'nofw', firmware: { kind: 'uefi', code: '/nonexistent/OVMF_CODE.fd', vars: '/nonexistent/OVMF_VARS.fd', package: 'ovmf' } }),
      'test',
    );
    const err = await new QemuMachine(p).start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toContain('/nonexistent/OVMF_CODE.fd');
    expect((err as Error).message).toContain('apt-get install ovmf');
  });

  it.each([
    ['x86_64-uefi', 'ovmf'],
    ['t100ta', 'ovmf-ia32'],
    ['aarch64-uefi', 'qemu-efi-aarch64'],
    ['aarch64-uboot', 'u-boot-qemu'],
  ])('profile %s without its firmware names the Debian package %s', async (name, pkg) => {
    const p = await loadProfile(name);
    const fw = p.firmware;
    const moved = fw.kind === 'uefi' ? { ...fw, code: `/nonexistent${fw.code}` } : fw.kind === 'bios-file' ? { ...fw, path: `/nonexistent${fw.path}` } : fw;
    const m = new QemuMachine({ ...p, firmware: moved });
    const err = await m.start().catch((e: unknown) => e);
    await m.stop();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toContain(`/nonexistent/usr/`);
    expect((err as Error).message).toContain(`apt-get install ${pkg}`);
    // Here the firmware is installed: the profile as shipped passes the same check.
    expect(() => new QemuMachine(p).checkHost()).not.toThrow();
  });

  it('a raspi profile must use the SD card bus, and a serial-login shell needs a login', async () => {
    const pi = await loadProfile('raspi3b');
    expect(() => validateProfile({ ...pi, qemu: { ...pi.qemu, diskBus: 'virtio' } }, 'machines/mypi.ts')).toThrow(/machines\/mypi\.ts[\s\S]*qemu\.diskBus: raspi firmware reads an SD card/);
    expect(() => validateProfile({ ...pi, guest: { ...pi.guest, login: undefined } }, 'machines/mypi.ts')).toThrow(/guest\.login: a serial-login shell needs guest\.login/);
  });

  it("a serial line's silence limit under 4 s names the field and why", async () => {
    const pi = await loadProfile('raspi3b');
    expect(() => validateProfile({ ...pi, guest: { ...pi.guest, shell: { kind: 'serial-login', console: 'serial0', silenceLimitSeconds: 2 } } }, 'machines/mypi.ts')).toThrow(/machines\/mypi\.ts[\s\S]*guest\.shell\.silenceLimitSeconds: at least 4 s: the guest sends a heartbeat every quarter of it/);
    expect(validateProfile({ ...pi, guest: { ...pi.guest, shell: { kind: 'serial-login', console: 'serial0', silenceLimitSeconds: 30 } } }, 'machines/mypi.ts').guest.shell).toMatchObject({ silenceLimitSeconds: 30 });
  });

  it("QEMU refusing its command line at start is a configuration error with QEMU's own words and exit code", async () => {
    const p = validateProfile(extendProfile(base, { name: 'badarg', qemu: { extraArgs: ['-no-such-qemu-option'] } }), 'test');
    const m = new QemuMachine(p);
    const err = await m.start().catch((e: unknown) => e);
    await m.stop();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toMatch(/^QEMU of machine badarg \(profile badarg\) exited while starting \(exit code 1\): it rejected its command line\./);
    expect((err as Error).message).toMatch(/qemu-system-x86_64: -no-such-qemu-option: invalid option/);
    expect(m.state).toBe('stopped');
  });

  it('QEMU dying at start for another reason is an infrastructure error with its exit status and stderr', async () => {
    // A QEMU binary that cannot run at all: a script standing in for a broken installation.
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-brokenqemu-'));
    const fake = join(dir, 'qemu-system-x86_64');
    await writeFile(fake, '#!/bin/sh\necho "qemu-system-x86_64: cannot allocate guest RAM: out of memory" >&2\nexit 1\n', { mode: 0o755 });
    const m = new QemuMachine(validateProfile(extendProfile(base, { name: 'broken', qemu: { binary: fake } }), 'test'));
    const err = await m.start().catch((e: unknown) => e);
    await m.stop();
    expect(err).toBeInstanceOf(InfrastructureError);
    expect((err as Error).message).toMatch(/exited (while starting \(exit code 1\)|right after it started)/);
    expect((err as Error).message).toContain('cannot allocate guest RAM');
  });
});
