// nixpkgs' nixos/tests/login.nix, its test script ported line for line to fleetlab: each NTD line is the comment
// above its counterpart. The node's configuration (`sound.enable = true`, a user alice) is the setup here, on the
// x86_64-systemd testbed (Debian's systemd, logind, agetty and PAM login) in place of a NixOS build.
//   fleetlab run scenarios/ntd-login.ts
import assert from 'node:assert/strict';
import { need, scenario } from 'fleetlab';

export const login = scenario({
  name: 'login',
  machines: { machine: 'x86_64-systemd' },
  timeout: '15m',
  tags: ['ntd', 'systemd'],
  async run({ machines: { machine }, step }) {
    const screen = need(machine, 'screen', 'login.nix types on the virtual consoles');
    await step('the node: sound (snd-timer, as sound.enable loads it)', async () => {
      await machine.succeed('modprobe snd-timer');
    });
    // machine.start(allow_reboot = True): the runner started it (reboots are always allowed)

    // machine.wait_for_unit("multi-user.target")
    await machine.waitForUnit('multi-user.target');
    // machine.wait_until_succeeds("pgrep -f 'agetty.*tty1'")
    await machine.waitUntilSucceeds("pgrep -f 'agetty.*tty1'");
    // machine.screenshot("postboot")
    await screen.screenshot('postboot');

    // with subtest("create user"):
    await step('create user', async () => {
      // machine.succeed("useradd -m alice")
      await machine.succeed('useradd -m alice');
      // machine.succeed("(echo foobar; echo foobar) | passwd alice")
      await machine.succeed('(echo foobar; echo foobar) | passwd alice');
    });

    // with subtest("Check whether switching VTs works"):
    await step('Check whether switching VTs works', async () => {
      // machine.fail("pgrep -f 'agetty.*tty2'")
      await machine.fail("pgrep -f 'agetty.*tty2'");
      // machine.send_key("alt-f2")
      await screen.sendKeys('alt-f2');
      // machine.wait_until_succeeds("[ $(fgconsole) = 2 ]")
      await machine.waitUntilSucceeds('[ $(fgconsole) = 2 ]');
      // machine.wait_for_unit("getty@tty2.service")
      await machine.waitForUnit('getty@tty2.service');
      // machine.wait_until_succeeds("pgrep -f 'agetty.*tty2'")
      await machine.waitUntilSucceeds("pgrep -f 'agetty.*tty2'");
    });

    // with subtest("Log in as alice on a virtual console"):
    await step('Log in as alice on a virtual console', async () => {
      // machine.wait_until_tty_matches("2", "login: ")
      await machine.waitUntilTtyMatches(2, 'login: ');
      // machine.send_chars("alice\n")
      await screen.typeText('alice\n');
      // machine.wait_until_tty_matches("2", "login: alice")
      await machine.waitUntilTtyMatches(2, 'login: alice');
      // machine.wait_until_succeeds("pgrep login")
      await machine.waitUntilSucceeds('pgrep login');
      // machine.wait_until_tty_matches("2", "Password: ")
      await machine.waitUntilTtyMatches(2, 'Password: ');
      // machine.send_chars("foobar\n")
      await screen.typeText('foobar\n');
      // machine.wait_until_succeeds("pgrep -u alice bash")
      await machine.waitUntilSucceeds('pgrep -u alice bash');
      // machine.send_chars("touch done\n")
      await screen.typeText('touch done\n');
      // machine.wait_for_file("/home/alice/done")
      await machine.waitForFile('/home/alice/done');
    });

    // with subtest("Systemd gives and removes device ownership as needed"):
    await step('Systemd gives and removes device ownership as needed', async () => {
      // machine.succeed("getfacl /dev/snd/timer | grep -q alice")
      await machine.succeed('getfacl /dev/snd/timer | grep -q alice');
      // machine.send_key("alt-f1")
      await screen.sendKeys('alt-f1');
      // machine.wait_until_succeeds("[ $(fgconsole) = 1 ]")
      await machine.waitUntilSucceeds('[ $(fgconsole) = 1 ]');
      // machine.fail("getfacl /dev/snd/timer | grep -q alice")
      await machine.fail('getfacl /dev/snd/timer | grep -q alice');
      // machine.succeed("chvt 2")
      await machine.succeed('chvt 2');
      // machine.wait_until_succeeds("getfacl /dev/snd/timer | grep -q alice")
      await machine.waitUntilSucceeds('getfacl /dev/snd/timer | grep -q alice');
    });

    // with subtest("Virtual console logout"):
    await step('Virtual console logout', async () => {
      // machine.send_chars("exit\n")
      await screen.typeText('exit\n');
      // machine.wait_until_fails("pgrep -u alice bash")
      await machine.waitUntilFails('pgrep -u alice bash');
      // machine.screenshot("getty")
      await screen.screenshot('getty');
    });

    // with subtest("Check whether ctrl-alt-delete works"):
    await step('Check whether ctrl-alt-delete works', async () => {
      // boot_id1 = machine.succeed("cat /proc/sys/kernel/random/boot_id").strip()
      const bootId1 = (await machine.succeed('cat /proc/sys/kernel/random/boot_id')).trim();
      // assert boot_id1 != ""
      assert.notEqual(bootId1, '');
      // machine.reboot()
      await machine.reboot({ via: 'ctrl-alt-del' });
      // boot_id2 = machine.succeed("cat /proc/sys/kernel/random/boot_id").strip()
      const bootId2 = (await machine.succeed('cat /proc/sys/kernel/random/boot_id')).trim();
      // assert boot_id2 != ""
      assert.notEqual(bootId2, '');
      // assert boot_id1 != boot_id2
      assert.notEqual(bootId1, bootId2);
    });
  },
});
