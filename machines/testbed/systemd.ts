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
  // Netfilter for iptables (Debian's, on nf_tables): NAT, marks, connection tracking and REJECT, as a NixOS firewall
  // and networking.nat use them (NTD's nat.nix).
  modules: [
    ...x86_64Testbed.modules, 'autofs4', 'snd-timer',
    'nf_tables', 'nft_compat', 'nft_chain_nat', 'nft_masq', 'nft_ct', 'nft_reject_ipv4', 'nf_nat', 'nf_conntrack',
    'x_tables', 'ip_tables', 'xt_MASQUERADE', 'xt_mark', 'xt_conntrack', 'ipt_REJECT', 'iptable_nat', 'iptable_filter', 'iptable_mangle',
  ],
  // The display's driver at boot (bochs, with the kernel's framebuffer console): the virtual consoles are on the
  // screen, for screenshots and OCR, as on a NixOS VM.
  bootModules: [...x86_64Testbed.bootModules, 'bochs'],
  extraPackages: [
    ...(x86_64Testbed.extraPackages ?? []),
    'systemd', 'systemd-sysv', 'udev', 'mount', 'util-linux',
    'dbus', 'dbus-bin', 'dbus-daemon', 'dbus-system-bus-common', 'dbus-session-bus-common',
    'libpam-modules', 'libpam-modules-bin', 'libpam-systemd', 'login', 'passwd', 'acl', 'bash', 'libtinfo6', 'procps', 'kbd',
    // What NixOS test nodes use most: iptables (networking.nat, the firewall), curl, an FTP server (services.vsftpd).
    'iptables', 'netbase', 'curl', 'vsftpd',
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
    ...wants('multi-user.target', 'fleetlab-web.service', '/etc/systemd/system/fleetlab-web.service'),
    // Debian makes these with update-alternatives when the package is installed: iptables on nf_tables.
    'usr/sbin/iptables': '/usr/sbin/iptables-nft',
    'usr/sbin/iptables-save': '/usr/sbin/iptables-nft-save',
    'usr/sbin/iptables-restore': '/usr/sbin/iptables-nft-restore',
    'usr/sbin/ip6tables': '/usr/sbin/ip6tables-nft',
    // The shell channel's console is the backdoor's, not a login's (NixOS disables this getty too).
    'etc/systemd/system/serial-getty@hvc0.service': '/dev/null',
    // NICs keep the kernel's names (eth0, eth1, … in the order of the scenario's networks), as on NixOS test VMs
    // (networking.usePredictableInterfaceNames = false): no udev renaming to ens3.
    'etc/systemd/network/99-default.link': '/dev/null',
    // The first boot's wizard asks on the console for a locale and a root password, and holds the boot until answered.
    'etc/systemd/system/systemd-firstboot.service': '/dev/null',
  },
};
