# fleetlab's NixOS guest module: what a NixOS image needs so fleetlab can drive it, on a VM or a board.
#
#   imports = [ fleetlab.nixosModules.fleetlab-guest ];
#   fleetlab.guest.enable = true;
#
# - a root shell on a virtio console that greets with "Spawning backdoor root shell...", the shell channel of
#   fleetlab's backdoor profiles (x86_64-*, t100ta, aarch64-*): its own implementation, in the manner of nixpkgs'
#   test instrumentation;
# - kernel consoles and gettys on the serial consoles (the login of fleetlab's serial-login profiles), with the
#   backdoor console kept free of kernel messages and of any getty;
# - the hostname from QEMU's fw_cfg (opt/fleetlab/hostname), which fleetlab's disk-booting profiles pass;
# - each NIC's address on the scenario's networks and every machine's name in /etc/hosts, from QEMU's fw_cfg
#   (opt/fleetlab/net), by the same script the testbed runs (machines/testbed/rootfs/etc/fleetlab/network);
# - boot counting for systemd-boot (fleetlab.guest.bootCounting), which nixpkgs does not have (it was merged and
#   reverted twice: #273062/#280147, #330017/#334526): after the builder, a new generation's entry goes on trial
#   (nixos-generation-N+TRIES.conf) with the default a pattern, so systemd-boot falls back to the newest good
#   generation when the tries are used up; a boot that fails the health check before boot-complete.target reboots;
#   one that passes is blessed after it. One script does it, machines/testbed/nixos/fleetlab-boot-counting, which
#   the testbed runs too;
# - magic rollback as deploy-rs does it (fleetlab.guest.magicRollback): after a switch or test the new system must be
#   confirmed (fleetlab creates /run/fleetlab/magic-rollback/confirmed over its shell channel or SSH) within the
#   timeout, or the machine goes back to the system that ran before (after a switch the profile too). Boots are not
#   armed: an unattended reboot never rolls back. One script, machines/testbed/nixos/fleetlab-magic-rollback, which
#   machine.nixos.switchWithMagicRollback() runs itself on a guest without this module.
{ config, lib, pkgs, ... }:

let
  cfg = config.fleetlab.guest;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types;

  # "ttyS0,115200" -> "ttyS0"
  ttyName = c: builtins.head (lib.splitString "," c);
  serialTtys = map ttyName cfg.serialConsoles;

  # systemd-boot's vendor GUID for its loader variables.
  rollbackDir = "/run/fleetlab/magic-rollback";

  esp = config.boot.loader.efi.efiSysMountPoint;
  # The boot counting script, shared with the testbed (its shebang line is a comment after writeShellScript's own).
  # The magic rollback script, shared with the harness (switchWithMagicRollback runs it where the module is absent).
  magicRollbackScript = pkgs.writeShellScript "fleetlab-magic-rollback" ''
    export PATH=${lib.makeBinPath [ pkgs.coreutils config.nix.package ]}:$PATH
    ${builtins.readFile ../../machines/testbed/nixos/fleetlab-magic-rollback}
  '';
  bootCountingScript = pkgs.writeShellScript "fleetlab-boot-counting" ''
    export PATH=${lib.makeBinPath [ pkgs.coreutils pkgs.gnused pkgs.gnugrep pkgs.systemd ]}:$PATH
    ${builtins.readFile ../../machines/testbed/nixos/fleetlab-boot-counting}
  '';
in
{
  imports = [
    (lib.mkRenamedOptionModule [ "fleetlab" "guest" "bootBlessing" "enable" ] [ "fleetlab" "guest" "bootCounting" "enable" ])
  ];

  options.fleetlab.guest = {
    enable = mkEnableOption "fleetlab's guest instrumentation (backdoor shell, serial consoles, fw_cfg hostname, boot counting, magic rollback)";

    backdoor = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run a root shell on {option}`fleetlab.guest.backdoor.console` that greets with \"Spawning backdoor root shell...\": fleetlab's shell channel.";
      };
      console = mkOption {
        type = types.strMatching "[a-zA-Z0-9]+";
        default = "hvc0";
        description = "The virtio console (a tty name under /dev) the backdoor shell runs on; fleetlab's profiles put it on hvc0.";
      };
    };

    serialConsoles = mkOption {
      type = types.listOf (types.strMatching "[a-zA-Z0-9]+(,[0-9]+[noe]?[0-9]*)?");
      default = if pkgs.stdenv.hostPlatform.isAarch64 then [ "ttyAMA0,115200" ] else [ "ttyS0,115200" ];
      defaultText = lib.literalExpression ''if pkgs.stdenv.hostPlatform.isAarch64 then [ "ttyAMA0,115200" ] else [ "ttyS0,115200" ]'';
      example = [ "ttyS1,115200" ];
      description = ''
        Kernel consoles (console= parameters, the last one is /dev/console) with a getty each: where kernel messages
        and the login prompt appear. ttyS0 on x86 and QEMU's virt with a 16550, ttyAMA0 on Raspberry Pis and virt's PL011.
      '';
    };

    hostnameFromFwCfg = mkOption {
      type = types.bool;
      default = true;
      description = "Set the hostname from QEMU's fw_cfg entry opt/fleetlab/hostname when the machine has it (fleetlab's disk-booting profiles pass the machine's name there).";
    };

    networkFromFwCfg = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Give each NIC the address fleetlab planned for it on the scenario's networks and name every machine of those
        networks in /etc/hosts (as `machine` and `machine.network`), from QEMU's fw_cfg entry opt/fleetlab/net
        ("MAC ADDRESS/PREFIX [batman]" lines, each NIC found by its MAC, and "host ADDRESS NAME..." lines), before
        network.target. It runs the testbed's own script, so a NixOS guest and the testbed agree. fleetlab owns the
        NICs' addresses then: others on them are flushed. A switch that rewrites /etc/hosts drops the names until
        the service runs again (`systemctl restart fleetlab-network`).
      '';
    };

    bootCounting = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Boot counting for systemd-boot, which nixpkgs' builder does not do: a new generation's entry is installed
          on trial (nixos-generation-N+TRIES.conf, systemd's Automatic Boot Assessment) with loader.conf's default the
          pattern nixos-generation-*; a boot with failed units reboots before boot-complete.target, so systemd-boot
          counts the try down and, with none left, boots the newest good generation; a healthy boot is blessed (its
          counter dropped, the exact default back). Needs systemd-boot.
        '';
      };
      tries = mkOption {
        type = types.ints.positive;
        default = 3;
        description = "Boots a new generation gets to come up healthy before systemd-boot falls back.";
      };
    };

    ssh.authorizedKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ssh-ed25519 AAAA... fleetlab" ];
      description = ''
        Public keys root accepts over SSH: with any, OpenSSH runs and root logs in with a key (no password), which is
        what fleetlab's `copyClosure(top, { via: 'nix' })` (nix copy --to ssh://root@…, as nixos-rebuild
        --target-host does), `machine.ssh()` and `fleetlab ssh` need on a NixOS image.
      '';
    };

    magicRollback = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          After each switch or test, wait for the harness to confirm the new system by creating
          ${rollbackDir}/confirmed; unconfirmed within {option}`fleetlab.guest.magicRollback.timeout`, go back to the
          system that ran before (after a switch, the system profile too) and activate it (deploy-rs's "magic
          rollback"). Boots are not armed.
        '';
      };
      timeout = mkOption {
        type = types.ints.positive;
        default = 120;
        description = "Seconds the harness has to confirm a new generation.";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = !(cfg.backdoor.enable && builtins.elem cfg.backdoor.console serialTtys);
          message = "fleetlab.guest: the backdoor console ${cfg.backdoor.console} is also in fleetlab.guest.serialConsoles; kernel messages and a getty would land inside the shell channel's answers. Use a virtio console for the backdoor.";
        }
      ];

      boot.kernelParams = map (c: "console=${c}") cfg.serialConsoles;

      systemd.services = lib.listToAttrs (
        map (tty: {
          name = "serial-getty@${tty}";
          value = {
            enable = true;
            wantedBy = [ "getty.target" ];
            serviceConfig.Restart = "always";
          };
        }) (lib.filter (tty: !(cfg.backdoor.enable && tty == cfg.backdoor.console)) serialTtys)
      );
    }

    (mkIf cfg.backdoor.enable {
      systemd.services.fleetlab-backdoor = {
        description = "fleetlab backdoor root shell on /dev/${cfg.backdoor.console}";
        wantedBy = [ "multi-user.target" ];
        requires = [ "dev-${cfg.backdoor.console}.device" ];
        after = [ "dev-${cfg.backdoor.console}.device" ];
        # As early as the console exists: fleetlab waits for this greeting before anything else.
        unitConfig.DefaultDependencies = false;
        # A switch whose new system changes this unit (a new bash or coreutils) must not restart it: that would cut
        # fleetlab's channel in the middle of the switch (which fleetlab runs under systemd-run, as nixos-rebuild does).
        restartIfChanged = false;
        serviceConfig = {
          Restart = "always";
          RestartSec = 0;
          KillMode = "process";
        };
        script = ''
          export USER=root HOME=/root
          if [ -e /etc/profile ]; then . /etc/profile; fi
          cd /tmp
          exec < /dev/${cfg.backdoor.console} > /dev/${cfg.backdoor.console} 2>&1
          ${pkgs.coreutils}/bin/stty raw -echo
          echo "Spawning backdoor root shell..."
          # A script argument keeps bash non-interactive: no prompt, no job control, no echo of commands.
          PS1= exec ${pkgs.bashInteractive}/bin/bash --norc /dev/${cfg.backdoor.console}
        '';
      };
      # Nothing else may read the backdoor console.
      systemd.services."serial-getty@${cfg.backdoor.console}".enable = false;
      systemd.services."getty@${cfg.backdoor.console}".enable = false;
    })

    (mkIf (cfg.hostnameFromFwCfg || cfg.networkFromFwCfg) {
      boot.kernelModules = [ "qemu_fw_cfg" ];
    })

    (mkIf cfg.hostnameFromFwCfg {
      systemd.services.fleetlab-hostname = {
        description = "Hostname from QEMU's fw_cfg (opt/fleetlab/hostname)";
        wantedBy = [ "sysinit.target" ];
        after = [ "systemd-modules-load.service" ];
        before = [ "sysinit.target" "network-pre.target" ];
        unitConfig.DefaultDependencies = false;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        script = ''
          f=/sys/firmware/qemu_fw_cfg/by_name/opt/fleetlab/hostname/raw
          if [ -r "$f" ]; then
            name=$(${pkgs.coreutils}/bin/cat "$f")
            echo "$name" > /proc/sys/kernel/hostname
            echo "fleetlab: hostname $name from fw_cfg"
          fi
        '';
      };
    })

    (mkIf cfg.networkFromFwCfg {
      boot.kernelModules = [ "batman-adv" ];
      systemd.services.fleetlab-network = {
        description = "Addresses and host names from QEMU's fw_cfg (opt/fleetlab/net)";
        wantedBy = [ "network.target" ];
        before = [ "network.target" ];
        wants = [ "network-pre.target" ];
        after = [ "network-pre.target" "systemd-modules-load.service" "fleetlab-hostname.service" ];
        unitConfig.ConditionPathExists = "/sys/firmware/qemu_fw_cfg/by_name/opt/fleetlab/net/raw";
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        path = [ pkgs.iproute2 pkgs.gnused pkgs.coreutils pkgs.iputils pkgs.batctl pkgs.kmod ];
        script = builtins.readFile ../../machines/testbed/rootfs/etc/fleetlab/network;
      };
    })

    (mkIf (cfg.ssh.authorizedKeys != [ ]) {
      services.openssh.enable = true;
      services.openssh.settings.PermitRootLogin = "prohibit-password";
      users.users.root.openssh.authorizedKeys.keys = cfg.ssh.authorizedKeys;
    })

    (mkIf cfg.bootCounting.enable {
      assertions = [
        {
          assertion = config.boot.loader.systemd-boot.enable;
          message = "fleetlab.guest.bootCounting needs systemd-boot (boot.loader.systemd-boot.enable): it counts the tries of systemd-boot's entries.";
        }
      ];
      # What the harness reads to know boot counting is on (machine.nixos.bootCounting()), as on the testbed.
      environment.etc."fleetlab/boot-counting.conf".text = "tries=${toString cfg.bootCounting.tries}\n";
      boot.loader.systemd-boot.extraInstallCommands = ''
        ${bootCountingScript} install ${esp} ${toString cfg.bootCounting.tries}
      '';
      # boot-complete.target as systemd defines it; the check is ordered before it, the blessing after it.
      systemd.targets.boot-complete = {
        description = "Boot Completion Check";
        requires = [ "sysinit.target" ];
        after = [ "sysinit.target" ];
      };
      systemd.services.fleetlab-boot-check = {
        description = "Check that the boot is healthy before boot counting blesses it";
        requiredBy = [ "boot-complete.target" ];
        before = [ "boot-complete.target" ];
        after = [ "default.target" "multi-user.target" ];
        unitConfig.RequiresMountsFor = esp;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          # Failed units on a boot that is on trial: reboot, so systemd-boot counts the try.
          FailureAction = "reboot";
        };
        script = "exec ${bootCountingScript} check ${esp}";
      };
      systemd.services.fleetlab-bless-boot = {
        description = "Mark the booted systemd-boot entry good (boot counting)";
        wantedBy = [ "multi-user.target" ];
        requires = [ "boot-complete.target" ];
        after = [ "boot-complete.target" ];
        unitConfig.RequiresMountsFor = esp;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        script = "exec ${bootCountingScript} bless ${esp}";
      };
    })

    (mkIf cfg.magicRollback.enable {
      # What the harness reads to know the module confirms switches (switchWithMagicRollback then confirms, not runs,
      # the rollback), as the testbed's guests have none.
      environment.etc."fleetlab/magic-rollback.conf".text = "timeout=${toString cfg.magicRollback.timeout}\n";
      # A switch or test (switch-to-configuration sets NIXOS_ACTION; a boot's stage 2 does not, and systemd does not
      # run yet) arms the watch with the system that ran before, unless the activation is the rollback's own.
      system.activationScripts.fleetlabMagicRollback = ''
        if [ -d /run/systemd/system ] && { [ "''${NIXOS_ACTION:-}" = switch ] || [ "''${NIXOS_ACTION:-}" = test ]; }; then
          ${magicRollbackScript} arm "$NIXOS_ACTION" "$(readlink -f /run/current-system)"
        fi
      '';
      systemd.paths.fleetlab-magic-rollback = {
        description = "Start fleetlab's magic-rollback watch when a switch arms it";
        wantedBy = [ "multi-user.target" ];
        pathConfig.PathExists = "${rollbackDir}/armed";
      };
      systemd.services.fleetlab-magic-rollback = {
        description = "Go back to the previous system unless fleetlab confirms the new one within ${toString cfg.magicRollback.timeout} s";
        # A switch must not stop the watch it has just armed.
        restartIfChanged = false;
        stopIfChanged = false;
        serviceConfig.Type = "simple";
        script = "exec ${magicRollbackScript} watch ${toString cfg.magicRollback.timeout}";
      };
    })
  ]);
}
