// A testbed variant with systemd as PID 1: Debian bookworm's systemd, udev, dbus and logind, so the systemd API
// (waitForUnit, systemctl, user managers), virtual-console gettys and ported NixOS test driver tests run against
// real systemd. The shell channel, networks, SSH and web page are the testbed's own, started by units
// (machines/testbed/systemd/: fleetlab-setup.service runs the testbed's rcS, fleetlab-backdoor.service its backdoor).
import type { TestbedRecipe } from './recipe.ts';
import { x86_64Testbed } from './x86_64.ts';

const wants = (target: string, unit: string, from = `/lib/systemd/system/${unit}`) => ({ [`etc/systemd/system/${target}.wants/${unit}`]: from });

/**
 * x86_64 testbed with systemd (profile x86_64-systemd): the system boots from the initramfs as the plain testbed does,
 * then /init hands over to systemd instead of busybox init. Getty on tty1 and the serial console (systemd's
 * generator), tty2–6 on demand through logind's autovt, as on NixOS. Login is shadow's with PAM (pam_unix, and
 * pam_systemd for a logind session), with useradd, passwd and getfacl beside it; bash is /bin/sh.
 */
export const x86_64SystemdTestbed: TestbedRecipe = {
  ...x86_64Testbed,
  name: 'x86_64-systemd',
  // snd-timer: the sound device a logind seat hands to whoever is logged in on its active console (NTD's login.nix).
  modules: [...x86_64Testbed.modules, 'autofs4', 'snd-timer'],
  // The display's driver at boot (bochs, with the kernel's framebuffer console): the virtual consoles are on the
  // screen, for screenshots and OCR, as on a NixOS VM.
  bootModules: [...x86_64Testbed.bootModules, 'bochs'],
  extraPackages: [
    ...(x86_64Testbed.extraPackages ?? []),
    'systemd', 'systemd-sysv', 'udev', 'mount', 'util-linux',
    'dbus', 'dbus-bin', 'dbus-daemon', 'dbus-system-bus-common', 'dbus-session-bus-common',
    'libpam-modules', 'libpam-modules-bin', 'libpam-systemd', 'login', 'passwd', 'acl', 'bash', 'libtinfo6', 'procps', 'kbd',
  ],
  shell: 'bash',
  overlay: 'systemd',
  keepShare: ['dbus-1'],
  links: {
    'etc/systemd/system/default.target': '/lib/systemd/system/multi-user.target',
    ...wants('multi-user.target', 'fleetlab-setup.service', '/etc/systemd/system/fleetlab-setup.service'),
    ...wants('multi-user.target', 'fleetlab-backdoor.service', '/etc/systemd/system/fleetlab-backdoor.service'),
    ...wants('getty.target', 'getty@tty1.service', '/lib/systemd/system/getty@.service'),
    ...wants('sockets.target', 'dbus.socket'),
    // The shell channel's console is the backdoor's, not a login's (NixOS disables this getty too).
    'etc/systemd/system/serial-getty@hvc0.service': '/dev/null',
    // The first boot's wizard asks on the console for a locale and a root password, and holds the boot until answered.
    'etc/systemd/system/systemd-firstboot.service': '/dev/null',
  },
};
