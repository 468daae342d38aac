// The NixOS guest module, checked where nixpkgs cannot be had: every .nix file parses, and the module's logic is
// evaluated with nixpkgs' lib (lib.evalModules) against plain stand-ins for the NixOS options it sets
// (nix/tests/eval-guest.nix). nixpkgs' lib comes from $FLEETLAB_NIXPKGS_LIB (scripts/test.sh unpacks the vendored
// copy next to the repository; your own nixpkgs' lib works too).
import { execa } from 'execa';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { which } from '../harness/qemu/host-packages.ts';

const root = join(import.meta.dirname, '..');
const nixLib = process.env.FLEETLAB_NIXPKGS_LIB;
const missing = !which('nix-instantiate') ? 'nix-instantiate is not installed (Debian package nix-bin; scripts/setup.sh installs it)' : !nixLib || !existsSync(join(nixLib, 'default.nix')) ? 'no nixpkgs lib: set FLEETLAB_NIXPKGS_LIB to a nixpkgs lib/ directory (scripts/test.sh unpacks ../shared/vendor/nixpkgs-lib-*.tar.gz when it is there)' : undefined;
if (missing) console.warn(`nix/fleetlab-guest.test.ts skipped: ${missing}`);

// No nix daemon or build users here: evaluation only.
const nixEnv = { NIX_CONFIG: 'build-users-group =', NIX_REMOTE: '' };

type Unit = Record<string, unknown> & { script?: string; requiredBy?: string[]; path?: string[]; before?: string[]; wantedBy?: string[]; after?: string[]; requires?: string[]; enable?: boolean; environment?: Record<string, string>; unitConfig?: Record<string, unknown>; serviceConfig?: Record<string, unknown>; pathConfig?: Record<string, string> };
interface Evaluated {
  failedAssertions: string[];
  warnings: string[];
  targets: Record<string, Unit>;
  etc: Record<string, { text?: string }>;
  extraInstallCommands: string;
  openssh: Record<string, unknown>;
  users: Record<string, unknown>;
  kernelParams: string[];
  kernelModules: string[];
  services: Record<string, Unit>;
  paths: Record<string, Unit>;
  activationScripts: Record<string, string>;
}

async function evaluate(settings: unknown, opts: { aarch64?: boolean } = {}): Promise<Evaluated> {
  const expr = `import ${join(root, 'nix/tests/eval-guest.nix')} { lib = import ${nixLib}; settings = builtins.fromJSON ''${JSON.stringify(settings)}''; aarch64 = ${opts.aarch64 ? 'true' : 'false'}; }`;
  const r = await execa('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { env: nixEnv, reject: false });
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Evaluated;
}

function nixFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? nixFiles(p) : n.endsWith('.nix') ? [p] : [];
  });
}

describe.skipIf(!!missing)('nix/: the NixOS guest module and flake', () => {
  it('every .nix file parses (nix-instantiate --parse)', async () => {
    const files = [join(root, 'flake.nix'), ...nixFiles(join(root, 'nix'))];
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) {
      const r = await execa('nix-instantiate', ['--parse', f], { env: nixEnv, reject: false });
      expect(r.exitCode, `${f}: ${r.stderr}`).toBe(0);
    }
  });

  it('sets nothing when fleetlab.guest.enable is false', async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: false, bootCounting: { enable: true }, magicRollback: { enable: true } } } });
    expect(c).toEqual({ failedAssertions: [], warnings: [], kernelParams: [], kernelModules: [], services: {}, paths: {}, activationScripts: {}, targets: {}, etc: {}, extraInstallCommands: '', openssh: {}, users: {} });
  });

  it('by default: a backdoor on hvc0 that greets like the test instrumentation, a serial console with a getty, the fw_cfg hostname', async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: true } } });
    expect(c.failedAssertions).toEqual([]);
    const backdoor = c.services['fleetlab-backdoor']!;
    expect(backdoor.script).toContain('echo "Spawning backdoor root shell..."');
    expect(backdoor.script).toContain('exec < /dev/hvc0 > /dev/hvc0 2>&1');
    expect(backdoor.script).toContain('/nix/store/stub-coreutils/bin/stty raw -echo');
    expect(backdoor.script).toContain('PS1= exec /nix/store/stub-bash-interactive/bin/bash --norc /dev/hvc0');
    expect(backdoor).toMatchObject({ wantedBy: ['multi-user.target'], requires: ['dev-hvc0.device'], after: ['dev-hvc0.device'], unitConfig: { DefaultDependencies: false }, serviceConfig: { Restart: 'always' }, restartIfChanged: false });
    // Kernel messages and the login on the serial console; nothing on the backdoor's.
    expect(c.kernelParams).toEqual(['console=ttyS0,115200']);
    expect(c.services['serial-getty@ttyS0']).toMatchObject({ enable: true, wantedBy: ['getty.target'] });
    expect(c.services['serial-getty@hvc0']).toMatchObject({ enable: false });
    expect(c.kernelModules).toEqual(['qemu_fw_cfg', 'batman-adv']);
    expect(c.services['fleetlab-hostname']!.script).toContain('/sys/firmware/qemu_fw_cfg/by_name/opt/fleetlab/hostname/raw');
    expect(c.services['fleetlab-hostname']).toMatchObject({ wantedBy: ['sysinit.target'], unitConfig: { DefaultDependencies: false }, serviceConfig: { Type: 'oneshot' } });
    expect(Object.keys(c.services).sort()).toEqual(['fleetlab-backdoor', 'fleetlab-hostname', 'fleetlab-network', 'serial-getty@hvc0', 'getty@hvc0', 'serial-getty@ttyS0'].sort());
  });

  it("applies the fabric's addresses and names with the testbed's own network script, before network.target", async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: true } } });
    const net = c.services['fleetlab-network']!;
    expect(net).toMatchObject({ wantedBy: ['network.target'], before: ['network.target'], unitConfig: { ConditionPathExists: '/sys/firmware/qemu_fw_cfg/by_name/opt/fleetlab/net/raw' }, serviceConfig: { Type: 'oneshot', RemainAfterExit: true } });
    expect(net.after).toContain('network-pre.target');
    expect(net.path).toEqual(['/nix/store/stub-iproute2', '/nix/store/stub-gnused', '/nix/store/stub-coreutils', '/nix/store/stub-iputils', '/nix/store/stub-batctl', '/nix/store/stub-kmod']);
    // The very script the testbed runs at boot and after a warm start (one logic for both).
    expect(net.script).toBe(readFileSync(join(root, 'machines/testbed/rootfs/etc/fleetlab/network'), 'utf8'));
    expect(net.script).toContain("sed -n 's/^host \\(.*\\)$/\\1 # fleetlab/p'");
    const off = await evaluate({ fleetlab: { guest: { enable: true, networkFromFwCfg: false } } });
    expect(off.services['fleetlab-network']).toBeUndefined();
  });

  it('serial consoles in order, each with a getty; the backdoor on another console', async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: true, backdoor: { console: 'hvc1' }, serialConsoles: ['ttyS0', 'ttyAMA0,115200'], hostnameFromFwCfg: false, networkFromFwCfg: false } } });
    expect(c.kernelParams).toEqual(['console=ttyS0', 'console=ttyAMA0,115200']);
    expect(c.services['serial-getty@ttyS0']?.enable).toBe(true);
    expect(c.services['serial-getty@ttyAMA0']?.enable).toBe(true);
    expect(c.services['fleetlab-backdoor']!.script).toContain('/dev/hvc1');
    expect(c.services['fleetlab-hostname']).toBeUndefined();
    expect(c.kernelModules).toEqual([]);
  });

  it("the serial console by default: ttyS0 on x86, ttyAMA0 on aarch64 (a raw-efi image on QEMU's virt and the Pis)", async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: true } } }, { aarch64: true });
    expect(c.kernelParams).toEqual(['console=ttyAMA0,115200']);
    expect(c.services['serial-getty@ttyAMA0']).toMatchObject({ enable: true });
    expect(c.services['serial-getty@ttyS0']).toBeUndefined();
  });

  it('ssh.authorizedKeys: OpenSSH on, root by key only, the keys given (what nix copy and machine.ssh() need)', async () => {
    const none = await evaluate({ fleetlab: { guest: { enable: true } } });
    expect([none.openssh, none.users]).toEqual([{}, {}]);
    const c = await evaluate({ fleetlab: { guest: { enable: true, ssh: { authorizedKeys: ['ssh-ed25519 AAAAC3Nz fleetlab'] } } } });
    expect(c.openssh).toEqual({ enable: true, settings: { PermitRootLogin: 'prohibit-password' } });
    expect(c.users).toEqual({ root: { openssh: { authorizedKeys: { keys: ['ssh-ed25519 AAAAC3Nz fleetlab'] } } } });
  });

  it('refuses a backdoor on a serial console (kernel messages would land in the answers)', async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: true, backdoor: { console: 'ttyS0' } } } });
    expect(c.failedAssertions).toEqual([expect.stringMatching(/^fleetlab.guest: the backdoor console ttyS0 is also in fleetlab.guest.serialConsoles/)]);
  });

  it('boot counting: the shared script after the builder, a health check before boot-complete.target that reboots, the blessing after it; needs systemd-boot', async () => {
    const without = await evaluate({ fleetlab: { guest: { enable: true, bootCounting: { enable: true } } } });
    expect(without.failedAssertions).toEqual([expect.stringMatching(/bootCounting needs systemd-boot/)]);
    const c = await evaluate({ fleetlab: { guest: { enable: true, bootCounting: { enable: true, tries: 2 } } }, boot: { loader: { 'systemd-boot': { enable: true }, efi: { efiSysMountPoint: '/efi' } } } });
    expect(c.failedAssertions).toEqual([]);
    expect(c.extraInstallCommands.trim()).toBe('/nix/store/stub-fleetlab-boot-counting install /efi 2');
    expect(c.etc['fleetlab/boot-counting.conf']).toEqual({ text: 'tries=2\n' });
    expect(c.targets['boot-complete']).toMatchObject({ requires: ['sysinit.target'], after: ['sysinit.target'] });
    expect(c.services['fleetlab-boot-check']).toMatchObject({ requiredBy: ['boot-complete.target'], before: ['boot-complete.target'], unitConfig: { RequiresMountsFor: '/efi' }, serviceConfig: { Type: 'oneshot', FailureAction: 'reboot' }, script: 'exec /nix/store/stub-fleetlab-boot-counting check /efi' });
    expect(c.services['fleetlab-bless-boot']).toMatchObject({ wantedBy: ['multi-user.target'], requires: ['boot-complete.target'], after: ['boot-complete.target'], serviceConfig: { Type: 'oneshot' }, script: 'exec /nix/store/stub-fleetlab-boot-counting bless /efi' });
    // Three tries unless set; the old bootBlessing option is renamed to it, with a warning.
    expect((await evaluate({ fleetlab: { guest: { enable: true, bootCounting: { enable: true } } }, boot: { loader: { 'systemd-boot': { enable: true } } } })).extraInstallCommands.trim()).toBe('/nix/store/stub-fleetlab-boot-counting install /boot 3');
    const renamed = await evaluate({ fleetlab: { guest: { enable: true, bootBlessing: { enable: true } } }, boot: { loader: { 'systemd-boot': { enable: true } } } });
    expect(renamed.warnings).toEqual([expect.stringMatching(/fleetlab\.guest\.bootBlessing\.enable.*renamed to.*fleetlab\.guest\.bootCounting\.enable/)]);
    expect(renamed.services['fleetlab-boot-check']).toBeDefined();
  });

  it("magic rollback: the shared script armed by a switch or test with the system that ran, watched for the configured time; boots are not armed", async () => {
    const c = await evaluate({ fleetlab: { guest: { enable: true, magicRollback: { enable: true, timeout: 45 } } } });
    const svc = c.services['fleetlab-magic-rollback']!;
    expect(svc.description).toContain('within 45 s');
    expect(svc.script).toBe('exec /nix/store/stub-fleetlab-magic-rollback watch 45');
    expect(svc).toMatchObject({ restartIfChanged: false, stopIfChanged: false });
    expect(svc.wantedBy).toBeUndefined(); // boots are not armed
    expect(c.paths['fleetlab-magic-rollback']).toMatchObject({ wantedBy: ['multi-user.target'], pathConfig: { PathExists: '/run/fleetlab/magic-rollback/armed' } });
    const arm = c.activationScripts.fleetlabMagicRollback!;
    expect(arm).toContain('if [ -d /run/systemd/system ] && { [ "${NIXOS_ACTION:-}" = switch ] || [ "${NIXOS_ACTION:-}" = test ]; }; then');
    expect(arm).toContain('/nix/store/stub-fleetlab-magic-rollback arm "$NIXOS_ACTION" "$(readlink -f /run/current-system)"');
    expect(c.etc['fleetlab/magic-rollback.conf']).toEqual({ text: 'timeout=45\n' });
  });

  it('bad option values are rejected by the module system, naming the option', async () => {
    await expect(evaluate({ fleetlab: { guest: { enable: true, magicRollback: { enable: true, timeout: 0 } } } })).rejects.toThrow(/fleetlab\.guest\.magicRollback\.timeout/);
    await expect(evaluate({ fleetlab: { guest: { enable: true, backdoor: { console: 'hvc 0' } } } })).rejects.toThrow(/fleetlab\.guest\.backdoor\.console/);
  });
});
