// nixpkgs' nixos/tests/nat.nix (its standalone variant: withFirewall = false, nftables = false), the test script
// ported line for line to fleetlab: each NTD line is the comment above its counterpart. The nodes' configurations
// (nat.nix's `nodes`) are the setup here, on x86_64-systemd testbeds (Debian's systemd, iptables on nf_tables, curl,
// vsftpd, busybox httpd for Apache) in place of NixOS builds: each node's configuration is a NixOS-shaped toplevel
// (its units under etc/systemd/system, its sysctl settings) that the node switches to, with the systemd testbed's
// stand-in for switch-to-configuration (machines/testbed/systemd/usr/lib/fleetlab/switch-to-configuration).
//   fleetlab run scenarios/ntd-nat.ts
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { need, scenario, type Machine } from 'fleetlab';

/** A node configuration's files, by path in its toplevel: text, or `{ link }` for a symbolic link. */
type Files = Record<string, string | { link: string }>;

/** A oneshot unit that stays active (RemainAfterExit), as NixOS writes a `script` with `serviceConfig.Type = "oneshot"`. */
const oneshot = (description: string, unit: string, start: string, stop: string) =>
  `[Unit]\nDescription=${description}\n${unit}\n[Service]\nType=oneshot\nRemainAfterExit=true\nExecStart=${start}\nExecStopPost=${stop}\n`;

// nixos/modules/services/networking/nat-iptables.nix: flushNat and setupNat for this router (internalIPs, no
// internalInterfaces, no forwardPorts, no externalIP: MASQUERADE).
const flushNat = ['pre', 'post', 'out']
  .map((c) => `iptables -w -t nat -D ${{ pre: 'PREROUTING', post: 'POSTROUTING', out: 'OUTPUT' }[c]} -j nixos-nat-${c} 2>/dev/null || true\niptables -w -t nat -F nixos-nat-${c} 2>/dev/null || true\niptables -w -t nat -X nixos-nat-${c} 2>/dev/null || true\n`)
  .join('');
const setupNat = (internalIPs: string, externalInterface: string) =>
  [
    '# Create subchains where we store rules',
    'iptables -w -t nat -N nixos-nat-pre',
    'iptables -w -t nat -N nixos-nat-post',
    'iptables -w -t nat -N nixos-nat-out',
    '# NAT packets coming from the internal IPs.',
    `iptables -w -t nat -A nixos-nat-post -s '${internalIPs}' -o ${externalInterface} -j MASQUERADE`,
    '# Append our chains to the nat tables',
    'iptables -w -t nat -A PREROUTING -j nixos-nat-pre',
    'iptables -w -t nat -A POSTROUTING -j nixos-nat-post',
    'iptables -w -t nat -A OUTPUT -j nixos-nat-out',
  ].join('\n') + '\n';

/** The router's configuration: routerBase, with networking.nat.enable = `nat`. */
function routerConfig(internalIPs: string, nat: boolean): Files {
  if (!nat) return {}; // routerDummyNoNat: no nat.service, no forwarding settings of its own
  return {
    // networking.nat.enable = true: nat.service (script = flushNat + setupNat; postStop = flushNat) ...
    'libexec/nat-start': `#!/bin/sh\nset -e\n${flushNat}${setupNat(internalIPs, 'eth1')}`,
    'libexec/nat-post-stop': `#!/bin/sh\n${flushNat}`,
    'etc/systemd/system/nat.service': oneshot(
      'Network Address Translation',
      'After=network-pre.target systemd-modules-load.service\nConditionCapability=CAP_NET_ADMIN',
      '@out@/libexec/nat-start',
      '@out@/libexec/nat-post-stop',
    ),
    // ... wantedBy = [ "network.target" ]
    'etc/systemd/system/network.target.wants/nat.service': { link: '../nat.service' },
    // ... and boot.kernel.sysctl."net.ipv4.conf.all.forwarding" (and default) = true.
    'etc/sysctl.d/60-nixos.conf': 'net.ipv4.conf.all.forwarding=1\nnet.ipv4.conf.default.forwarding=1\n',
  };
}

// nixos/modules/services/networking/firewall-iptables.nix, the client's default firewall (networking.firewall.enable
// defaults to true): established traffic, loopback and ping in, every other new connection dropped (its logging of
// refused connections left out).
const firewallStart = [
  'iptables -w -N nixos-fw-accept', 'iptables -w -A nixos-fw-accept -j ACCEPT',
  'iptables -w -N nixos-fw-refuse', 'iptables -w -A nixos-fw-refuse -j DROP',
  'iptables -w -N nixos-fw',
  'iptables -w -A nixos-fw -i lo -j nixos-fw-accept',
  'iptables -w -A nixos-fw -m conntrack --ctstate ESTABLISHED,RELATED -j nixos-fw-accept',
  'iptables -w -A nixos-fw -p icmp --icmp-type echo-request -j nixos-fw-accept',
  'iptables -w -A nixos-fw -j nixos-fw-refuse',
  'iptables -w -A INPUT -j nixos-fw',
].join('\n') + '\n';
const firewallStop = 'iptables -w -D INPUT -j nixos-fw 2>/dev/null || true\nfor c in nixos-fw nixos-fw-accept nixos-fw-refuse; do iptables -w -F $c 2>/dev/null; iptables -w -X $c 2>/dev/null; done; true\n';

/**
 * A configuration's toplevel (`nodes.<name>.config.system.build.toplevel`): built on the host as a folder, its files'
 * `@out@` replaced by its store path (named by a hash of its files, as Nix names one), copied into the node's store
 * over the shell channel; its bin/switch-to-configuration is the testbed's stand-in. Returns the store path.
 */
async function toplevel(m: Machine, name: string, files: Files): Promise<string> {
  const all: Files = { ...files, 'bin/switch-to-configuration': { link: '/usr/lib/fleetlab/switch-to-configuration' } };
  const out = `/nix/store/${createHash('sha256').update(JSON.stringify(all)).digest('hex').slice(0, 32)}-nixos-system-${name}`;
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-ntd-nat-'));
  try {
    for (const [path, body] of Object.entries(all)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      if (typeof body === 'string') await writeFile(join(dir, path), body.replaceAll('@out@', out), { mode: path.startsWith('libexec/') ? 0o755 : 0o644 });
      else await symlink(body.link, join(dir, path));
    }
    await m.copyToMachine(dir, out);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const nat = scenario({
  name: 'nat',
  // client: virtualisation.vlans = [ 1 ]; router: [ 2 1 ]; server: [ 2 ]. The router's NICs come in the networks'
  // order: eth0 on inside, eth1 on outside (networking.nat.externalInterface = "eth1").
  machines: { client: 'x86_64-systemd', router: 'x86_64-systemd', server: 'x86_64-systemd' },
  networks: { inside: ['client', 'router'], outside: ['router', 'server'] },
  timeout: '20m',
  tags: ['ntd', 'systemd'],
  async run({ machines: { client, router, server }, step }) {
    let routerClosure = '';
    let routerDummyNoNatClosure = '';
    await step("the nodes' configurations", async () => {
      // server: networking.firewall.enable = false (the testbed has none); services.httpd.enable = true (busybox
      // httpd serving Apache's "It works!" page on port 80, which the testbed's own page gives up);
      // services.vsftpd.enable = true with anonymousUser = true (vsftpd as the NixOS module configures it).
      await server.succeed([
        'systemctl disable --now fleetlab-web.service',
        'useradd -r -d /home/ftp -s /sbin/nologin ftp && mkdir -p /home/ftp && chmod 755 /home/ftp',
        'useradd -r -d /var/empty -s /sbin/nologin vsftpd && mkdir -p /var/empty',
      ]);
      const serverTop = await toplevel(server, 'server', {
        'htdocs/index.html': '<html><body><h1>It works!</h1></body></html>\n',
        'etc/systemd/system/httpd.service': '[Unit]\nDescription=Apache HTTPD\nAfter=network.target\n[Service]\nExecStart=/bin/busybox httpd -f -p 80 -h @out@/htdocs\n',
        'etc/systemd/system/multi-user.target.wants/httpd.service': { link: '../httpd.service' },
        'etc/vsftpd.conf': [
          'anonymous_enable=YES', 'local_enable=NO', 'write_enable=NO', 'anon_upload_enable=NO', 'anon_mkdir_write_enable=NO',
          'anon_other_write_enable=NO', 'chroot_local_user=NO', 'anon_root=/home/ftp/', 'ftp_username=ftp',
          'background=YES', 'listen=YES', 'listen_ipv6=NO', 'nopriv_user=vsftpd', 'secure_chroot_dir=/var/empty',
          'syslog_enable=YES', 'pam_service_name=vsftpd', '',
        ].join('\n'),
        'etc/systemd/system/vsftpd.service': '[Unit]\nDescription=Vsftpd Server\nAfter=network.target\n[Service]\nType=forking\nExecStart=/usr/sbin/vsftpd @out@/etc/vsftpd.conf\n',
        'etc/systemd/system/multi-user.target.wants/vsftpd.service': { link: '../vsftpd.service' },
      });
      await server.succeed(`${serverTop}/bin/switch-to-configuration test`);

      // router: routerBase (networking.firewall.enable = false; nat.internalIPs = [ the inside network ];
      // nat.externalInterface = "eth1") with nat.enable = true, and routerDummyNoNat with nat.enable = false.
      await router.succeed(`ip -4 -o addr show dev eth1 | grep -qF ' ${need(router, 'net').address('outside')}/'`);
      const inside = `${need(client, 'net').address('inside').replace(/\.\d+$/, '.0')}/24`;
      routerClosure = await toplevel(router, 'router', routerConfig(inside, true));
      routerDummyNoNatClosure = await toplevel(router, 'routerDummyNoNat', routerConfig(inside, false));
      // Booted into it, network.target would have started nat.service; a switch does not (network.target refuses a
      // manual start: the FIXME below), so the node's boot is this start.
      await router.succeed([`${routerClosure}/bin/switch-to-configuration test`, 'systemctl start nat.service']);

      // client: networking.defaultGateway = the router's address on vlan 1; the default firewall.
      const clientTop = await toplevel(client, 'client', {
        'libexec/firewall-start': `#!/bin/sh\nset -e\n${firewallStop}${firewallStart}`,
        'libexec/firewall-stop': `#!/bin/sh\n${firewallStop}`,
        'etc/systemd/system/firewall.service': oneshot('Firewall', 'Before=network-pre.target\nWants=network-pre.target\nAfter=systemd-modules-load.service', '@out@/libexec/firewall-start', '@out@/libexec/firewall-stop'),
        'etc/systemd/system/sysinit.target.wants/firewall.service': { link: '../firewall.service' },
      });
      await client.succeed([`${clientTop}/bin/switch-to-configuration test`, `ip route replace default via ${need(router, 'net').address('inside')}`]);
    });

    // client.start(); router.start(); server.start(): the runner started them

    // # The router should have access to the server.
    await step('The router should have access to the server', async () => {
      // server.wait_for_unit("network.target")
      await server.waitForUnit('network.target');
      // server.wait_for_unit("httpd")
      await server.waitForUnit('httpd');
      // router.wait_for_unit("network.target")
      await router.waitForUnit('network.target');
      // router.succeed("curl -4 --fail http://server/ >&2")
      await router.succeed('curl -4 --fail http://server/ >&2');
    });

    // # The client should be also able to connect via the NAT router.
    await step('The client should be also able to connect via the NAT router', async () => {
      // router.wait_for_unit("${unit}")   (unit = "nat" in the standalone variant)
      await router.waitForUnit('nat');
      // client.wait_for_unit("network.target")
      await client.waitForUnit('network.target');
      // client.succeed("curl --fail http://server/ >&2")
      await client.succeed('curl --fail http://server/ >&2');
      // client.succeed("ping -4 -c 1 server >&2")
      await client.succeed('ping -4 -c 1 server >&2');
    });

    // # Test whether passive FTP works.
    await step('Test whether passive FTP works', async () => {
      // server.wait_for_unit("vsftpd")
      await server.waitForUnit('vsftpd');
      // server.succeed("echo Hello World > /home/ftp/foo.txt")
      await server.succeed('echo Hello World > /home/ftp/foo.txt');
      // client.succeed("curl -v ftp://server/foo.txt >&2")
      await client.succeed('curl -v ftp://server/foo.txt >&2');
    });

    // # Test whether active FTP works.
    await step('Test whether active FTP works', async () => {
      // client.fail("curl -v -P - ftp://server/foo.txt >&2")
      await client.fail('curl -v -P - ftp://server/foo.txt >&2');
    });

    // # Test ICMP.
    await step('Test ICMP', async () => {
      // client.succeed("ping -4 -c 1 router >&2")
      await client.succeed('ping -4 -c 1 router >&2');
      // router.succeed("ping -4 -c 1 client >&2")
      await router.succeed('ping -4 -c 1 client >&2');
    });

    // # If we turn off NAT, the client shouldn't be able to reach the server.
    await step("If we turn off NAT, the client shouldn't be able to reach the server", async () => {
      // router.succeed("${routerDummyNoNatClosure}/bin/switch-to-configuration test 2>&1")
      await router.succeed(`${routerDummyNoNatClosure}/bin/switch-to-configuration test 2>&1`);
      // client.fail("curl -4 --fail --connect-timeout 5 http://server/ >&2")
      await client.fail('curl -4 --fail --connect-timeout 5 http://server/ >&2');
      // client.fail("ping -4 -c 1 server >&2")
      await client.fail('ping -4 -c 1 server >&2');
    });

    // # And make sure that reloading the NAT job works.
    await step('And make sure that reloading the NAT job works', async () => {
      // router.succeed("${routerClosure}/bin/switch-to-configuration test 2>&1")
      await router.succeed(`${routerClosure}/bin/switch-to-configuration test 2>&1`);
      // # FIXME: this should not be necessary, but nat.service is not started because network.target is not triggered
      // router.succeed("systemctl start nat.service")   (standalone variant only)
      await router.succeed('systemctl start nat.service');
      // client.succeed("curl -4 --fail http://server/ >&2")
      await client.succeed('curl -4 --fail http://server/ >&2');
      // client.succeed("ping -4 -c 1 server >&2")
      await client.succeed('ping -4 -c 1 server >&2');
    });
  },
});
