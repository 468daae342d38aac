// Smoke test of a machine: boot, run commands, check what hardware and firmware the guest sees, which boot entry it
// took, log in on the serial console, keep an EFI variable across a reboot. Runs on every profile:
//   fleetlab run scenarios/smoke.ts --machine all
import assert from 'node:assert/strict';
import { QemuMachine, scenario } from 'fleetlab';

/** What uname -m says on each profile architecture. */
const UNAME: Record<string, string> = { x86_64: 'x86_64', aarch64: 'aarch64', arm: 'armv7l', i386: 'i686' };
/** An EFI variable in fleetlab's own vendor namespace. */
const EFI_VAR = '/sys/firmware/efi/efivars/FleetlabSmoke-2d2e0f1a-9c8b-4d6e-8f7a-6b5c4d3e2f10';

export const smoke = scenario({
  name: 'smoke',
  machines: { main: 'x86_64-direct' },
  timeout: 8 * 60_000,
  tags: ['smoke'],
  async run({ machines: { main }, step, log }) {
    const profile = main.profile;
    const fw = profile.firmware;
    await step('commands and exit codes', async () => {
      assert.equal((await main.succeed('echo hello')).trim(), 'hello');
      assert.equal((await main.execute('exit 3')).exitCode, 3);
      assert.equal((await main.execute('no-such-command')).exitCode, 127);
      await main.fail('false');
    });
    // fleetlab names the machine through the kernel command line or QEMU's fw_cfg; the Pi under U-Boot has neither
    // (U-Boot boots extlinux.conf's command line), and a lab board has no such channel: the system keeps its own name.
    const named = main.passesHostname;
    await step(named ? 'hostname is the machine name' : "hostname is the system's own (nothing passes the machine's name)", async () => {
      assert.equal((await main.succeed('hostname')).trim(), named ? main.name : (await main.succeed('cat /etc/static/hostname')).trim());
    });
    await step(`architecture is ${UNAME[profile.arch]}`, async () => {
      assert.equal((await main.succeed('uname -m')).trim(), UNAME[profile.arch]);
    });
    const firmware = fw.kind === 'uefi' ? `UEFI ${fw.bits}-bit` : fw.kind === 'raspi' || fw.kind === 'bios-file' ? 'device tree, no UEFI' : 'no UEFI';
    await step(`firmware: ${firmware}`, async () => {
      const size = await main.execute('cat /sys/firmware/efi/fw_platform_size');
      if (fw.kind === 'uefi') assert.equal(size.stdout.trim(), String(fw.bits), 'fw_platform_size');
      else assert.notEqual(size.exitCode, 0, `/sys/firmware/efi exists on ${fw.kind} firmware: ${size.stdout}`);
      if (fw.kind === 'raspi' || fw.kind === 'bios-file') await main.succeed('test -d /sys/firmware/devicetree/base');
    });
    // The testbed boot disk fleetlab built for a VM names its entries; a board boots what its card holds.
    const entry = main instanceof QemuMachine ? main.bootDisk?.entries[0] : undefined;
    if (entry) {
      await step(`booted entry ${entry.id} (${entry.title})`, async () => {
        const cmdline = (await main.succeed('cat /proc/cmdline')).trim();
        assert.match(cmdline, new RegExp(`(^| )fleetlab\\.entry=${entry.id}( |$)`), `the default entry's marker fleetlab.entry=${entry.id} on the kernel command line: ${cmdline}`);
      });
    }
    if (profile.guest.shell.kind === 'serial-login') {
      log('serial login: the shell channel itself runs over a serial login on this profile');
    } else {
      await step('serial login', async () => {
        await main.login();
        await main.sendConsole('echo serial-$((40+2))\n');
        await main.waitForConsoleText(/serial-42/);
      });
    }
    const uefi = fw.kind === 'uefi';
    await step(uefi ? 'reboot changes the boot id and keeps an EFI variable' : 'reboot changes the boot id', async () => {
      const before = await main.bootId();
      // Attributes NV|BS|RT (7), then the value; efivarfs takes it in one write.
      if (uefi) await main.succeed(`printf '\\007\\000\\000\\000before-${before.slice(0, 8)}' > ${EFI_VAR}`);
      await main.reboot();
      const after = await main.bootId();
      assert.notEqual(after, before, 'boot id after reboot');
      if (uefi) assert.equal((await main.succeed(`tail -c +5 ${EFI_VAR}`)).trim(), `before-${before.slice(0, 8)}`, 'EFI variable after reboot');
    });
  },
});
