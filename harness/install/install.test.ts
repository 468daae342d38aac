// Install flows for real: scenarios/install.ts's ISO install on x86_64-uefi (installer booted from the CD, NixOS's
// manual steps, the CD ejected through QMP, systemd-boot from the disk, then generation 2) and SD image on
// aarch64-uboot (the root grown to the card at the first boot, extlinux), each phase a step in the report and what
// was installed in JUnit; bad options are configuration errors before any QEMU starts; a system the installer lacks
// fails the install phase with nixos-install's message. nixos-anywhere (the testbed's stand-in for the command) from
// a running x86_64-uefi testbed: kexec, disko, install, reboot as steps; too little memory refused before it starts;
// an SSH server that is down and a kexec that never returns end their steps at the deadline as infrastructure errors
// with the console tail, leaving no process behind; a second run over a half-finished disk installs cleanly.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeConsoleLog } from '../console/console-log.ts';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { parseSize } from './size.ts';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'harness/cli/main.ts');

interface Step {
  name: string;
  status: string;
  steps: Step[];
}

/** The steps of a case as "status name" lines, nested ones after their parent. */
const names = (steps: Step[]): string[] => steps.flatMap((s) => [`${s.status} ${s.name}`, ...names(s.steps)]);

/** Runs the cases of scenarios/install.ts and the fault fixtures that `grep` picks; their last attempts by name. */
async function runCases(out: string, grep: string) {
  const run = await execa(process.execPath, [cli, 'run', 'scenarios/install.ts', 'harness/install/fixtures/install-faults.ts', '--grep', grep, '--workers', '2', '--output', out], {
    cwd: root,
    reject: false,
    timeout: 600_000,
    env: { CI: 'true', NO_COLOR: '1' },
  });
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
  const byName = (n: string) => report.results.find((c: { scenario: string }) => c.scenario === n)?.attempts.at(-1);
  return { byName, detail: run.stdout.slice(-4000) };
}

describe('install flows', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-install-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('sizes: binary units, bytes; anything else names the field', () => {
    expect(parseSize('4G', 'target.disk')).toBe(4 * 2 ** 30);
    expect(parseSize('512M', 'target.disk')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5GiB', 'target.disk')).toBe(1.5 * 2 ** 30);
    expect(parseSize(2 ** 21, 'target.disk')).toBe(2 ** 21);
    expect(() => parseSize('four gigs', 'target.disk')).toThrow(/target.disk: "four gigs" is no size; write a size like "4G"/);
    expect(() => parseSize('1000', 'card')).toThrow(ConfigurationError);
    expect(() => parseSize(2 ** 20 + 1, 'card')).toThrow(/not a whole number of 512-byte sectors/);
  });

  it('ISO install on x86_64-uefi and SD image on aarch64-uboot end booted from their own disks; bad input fails before anything boots', async () => {
    const out = join(dir, 'run');
    const { byName, detail } = await runCases(out, '^(ISO install: x86_64-uefi|SD image: aarch64-uboot|missing|unparsable|unknown phase|unknown nixos-anywhere phase|a system the installer) ');

    const iso = byName('ISO install: x86_64-uefi');
    expect(iso?.status, detail).toBe('passed');
    for (const phase of ['boot installer', 'partition', 'format', 'install', 'eject', 'first boot', 'update to generation 2 and reboot into it']) expect(names(iso.steps)).toContain(`passed ${phase}`);
    expect(iso.properties).toMatchObject({ 'install.kind': 'iso', 'install.disk': '/dev/vda', 'install.root': '/dev/vda2', 'install.bootloader': 'systemd-boot', 'install.firmware': 'uefi-64', 'install.generation': '1' });
    expect(iso.output.join('\n')).toMatch(/installer: installation finished!/);
    const sd = byName('SD image: aarch64-uboot');
    expect(sd?.status, detail).toBe('passed');
    expect(names(sd.steps)).toEqual(expect.arrayContaining(['passed write card', 'passed first boot']));
    expect(sd.properties).toMatchObject({ 'install.kind': 'sd-image', 'install.root': '/dev/vda2', 'install.bootloader': 'extlinux' });
    expect(Number(sd.properties['install.rootBytes'])).toBeGreaterThan(900 * 2 ** 20);

    for (const [name, message] of [
      ['missing ISO', /install.fromIso\(pc\): iso: .*no-such-installer.iso does not exist/],
      ['unparsable disk size', /install.fromIso\(pc\): target.disk: "four gigs" is no size/],
      ['unknown phase', /timeouts: unknown phase "kexec"; phases are: boot installer, partition, format, install, eject, first boot/],
      ['missing SD image', /install.sdImage\(board\): image: .*no-such-sd-image.img does not exist/],
      ['unknown nixos-anywhere phase', /install.nixosAnywhere\(host\): phases: unknown phase "partition"; nixos-anywhere's phases are kexec, disko, install, reboot/],
    ] as const) {
      const c = byName(name);
      expect(c?.status, `${name}: ${detail}`).toBe('error');
      expect(c.error.kind).toBe('configuration');
      expect(c.error.message).toMatch(message);
      // Nothing booted: no console log was written for the machine.
      expect(c.steps, name).toEqual([]);
    }
    const wrong = byName('a system the installer does not have');
    expect(wrong?.status, detail).toBe('failed');
    expect(names(wrong.steps)).toEqual(expect.arrayContaining(['passed format', 'failed install']));
    expect(wrong.error.message).toMatch(/nixos-install exited 1:[\s\S]*is not a NixOS system in this installer's store/);
    expect(existsSync(join(out, 'junit.xml'))).toBe(true);
  }, 620_000);

  it('nixos-anywhere: kexec, disko, install, reboot on x86_64-uefi; too little memory, SSH down, busybox as sh, a kexec that never returns, a half-finished disk', async () => {
    const out = join(dir, 'anywhere');
    const { byName, detail } = await runCases(out, '^nixos-anywhere(: x86_64-uefi| on a machine| to a machine| whose kexec| over a half)');

    const ok = byName('nixos-anywhere: x86_64-uefi');
    expect(ok?.status, detail).toBe('passed');
    expect(names(ok.steps)).toEqual(['passed boot target', 'passed connect', 'passed kexec', 'passed disko', 'passed install', 'passed reboot', 'passed first boot', 'passed update to generation 2 and reboot into it']);
    expect(ok.properties).toMatchObject({ 'install.kind': 'nixos-anywhere', 'install.root': '/dev/vda2', 'install.bootloader': 'systemd-boot', 'install.generation': '1' });
    const said = ok.output.join('\n');
    for (const line of ['### Switching system into kexec ###', '### Formatting hard drive with disko ###', '### Installing NixOS ###', 'installation finished!']) expect(said).toContain(line);

    const memory = byName('nixos-anywhere on a machine with too little memory');
    expect(memory?.status, detail).toBe('error');
    expect(memory.error.kind).toBe('configuration');
    expect(memory.error.message).toMatch(/has \d+ MiB of RAM; nixos-anywhere's kexec installer needs about 1536 MiB/);
    expect(names(memory.steps)).not.toContain('passed connect');

    const refused = byName('nixos-anywhere to a machine whose SSH server is down');
    expect(refused?.status, detail).toBe('error');
    expect(refused.error.kind).toBe('infrastructure');
    expect(refused.error.message).toMatch(/after 20 s .*waiting for nixos-anywhere's connect phase/);
    expect(refused.error.message).toMatch(/### Uploading install SSH keys ###/);

    // The stand-in refuses what the real one refuses: a target whose sh (busybox-static's ash) has no setsid --wait.
    const busybox = byName('nixos-anywhere to a machine whose sh is busybox');
    expect(busybox?.status, detail).toBe('error');
    expect(busybox.error.message).toMatch(/exited 1 in its connect phase:[\s\S]*### Gathering machine facts ###[\s\S]*no setsid command respecting --wait found/);
    expect(names(busybox.steps)).not.toContain('passed kexec');

    const hang = byName('nixos-anywhere whose kexec never comes back');
    expect(hang?.status, detail).toBe('error');
    expect(hang.error.kind).toBe('infrastructure');
    expect(hang.error.message).toMatch(/after 45 s .*waiting for the machine to come back from kexec into the installer/);
    // The console tail shows how far the kexec'd kernel got (on an idle host its init; under load it may still be
    // early in its boot at the deadline): its last line comes after the second kernel's banner in the console log.
    const log = decodeConsoleLog(await readFile(hang.machines[0].logPath)).toString('latin1');
    const kexecd = log.lastIndexOf('Linux version');
    expect(log.indexOf('Linux version'), 'the first kernel and the kexec\'d one both logged').toBeLessThan(kexecd);
    const tail = hang.error.message.split('Last 20 console lines:\n')[1]?.split('\n').map((l: string) => l.replace(/^\s*\| /, '').trim()).filter((l: string) => l.startsWith('[')) ?? [];
    expect(tail.length, hang.error.message).toBeGreaterThan(0);
    expect(log.indexOf(tail.at(-1)!.slice(0, 40), kexecd), `the tail's last line ${tail.at(-1)} is the kexec'd kernel's`).toBeGreaterThan(kexecd);
    expect(names(hang.steps)).toContain('failed kexec');
    expect(hang.durationMs).toBeLessThan(150_000);

    const half = byName('nixos-anywhere over a half-finished install');
    expect(half?.status, detail).toBe('passed');
    // The second run found the installer running: no kexec; disko started the disk over.
    expect(names(half.steps).filter((s) => s === 'passed kexec')).toHaveLength(1);
    expect(names(half.steps)).toContain('passed nothing of the first run is left');

    // nixos-anywhere and its ssh children are gone.
    const left = (await execa('pgrep', ['-af', 'machines/testbed/nixos-anywhere'], { reject: false })).stdout.trim();
    expect(left).toBe('');
  }, 740_000);
});
