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
# - boot blessing for systemd-boot boot counting: once multi-user.target is reached, the booted entry
#   (loader/entries/nixos-generation-N+LEFT-DONE.conf, named by systemd-boot in the LoaderBootCountPath EFI variable)
#   is renamed to nixos-generation-N.conf, as systemd-bless-boot does;
# - magic rollback as deploy-rs does it: after a switch the new generation must be confirmed (fleetlab writes
#   /run/fleetlab/magic-rollback/confirmed over its shell channel or SSH) within the timeout, or the system rolls its
#   profile back to the previous generation and activates it. Boots are not armed: an unattended reboot never rolls back.
{ config, lib, pkgs, ... }:

let
  cfg = config.fleetlab.guest;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types;

  # "ttyS0,115200" -> "ttyS0"
  ttyName = c: builtins.head (lib.splitString "," c);
  serialTtys = map ttyName cfg.serialConsoles;

  # systemd-boot's vendor GUID for its loader variables.
  loaderGuid = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
  rollbackDir = "/run/fleetlab/magic-rollback";
in
{
  options.fleetlab.guest = {
    enable = mkEnableOption "fleetlab's guest instrumentation (backdoor shell, serial consoles, fw_cfg hostname, boot blessing, magic rollback)";

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
      default = [ "ttyS0,115200" ];
      example = [ "ttyAMA0,115200" ];
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

    bootBlessing.enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Mark the booted systemd-boot entry good once multi-user.target is reached, by renaming the entry file that
        systemd-boot's boot counting booted (LoaderBootCountPath) to its name without the "+LEFT-DONE" counter, as
        systemd-bless-boot does. A generation that never gets there runs out of tries, and systemd-boot boots the
        previous one. Needs systemd-boot.
      '';
    };

    magicRollback = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          After each switch, wait for the harness to confirm the new generation by creating
          ${rollbackDir}/confirmed; unconfirmed within {option}`fleetlab.guest.magicRollback.timeout`, roll the system
          profile back to the previous generation and activate it (deploy-rs's "magic rollback"). Boots are not armed.
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

    (mkIf cfg.bootBlessing.enable {
      assertions = [
        {
          assertion = config.boot.loader.systemd-boot.enable;
          message = "fleetlab.guest.bootBlessing needs systemd-boot (boot.loader.systemd-boot.enable): it blesses systemd-boot's boot-counted entries.";
        }
      ];
      systemd.services.fleetlab-bless-boot = {
        description = "Mark the booted systemd-boot entry good (boot counting)";
        wantedBy = [ "multi-user.target" ];
        after = [ "multi-user.target" ];
        unitConfig.RequiresMountsFor = "/boot";
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        script = ''
          var=/sys/firmware/efi/efivars/LoaderBootCountPath-${loaderGuid}
          if [ ! -r "$var" ]; then
            echo "fleetlab: not booted through a boot-counted entry; nothing to bless"
            exit 0
          fi
          # 4 bytes of attributes, then a UTF-16LE path with backslashes, relative to the ESP.
          path=$(${pkgs.coreutils}/bin/tail -c +5 "$var" | ${pkgs.coreutils}/bin/tr -d '\000' | ${pkgs.coreutils}/bin/tr '\\' /)
          entry=/boot$path
          blessed=$(echo "$entry" | ${pkgs.gnused}/bin/sed -E 's/\+[0-9]+(-[0-9]+)?\.conf$/.conf/')
          if [ -e "$entry" ] && [ "$entry" != "$blessed" ]; then
            mv "$entry" "$blessed"
            sync
            echo "fleetlab: blessed $blessed"
          fi
        '';
      };
    })

    (mkIf cfg.magicRollback.enable {
      # A switch (not a boot: stage 2 activates before systemd runs) arms the check for the generation it activates,
      # unless the switch is the rollback itself. The path unit starts the check once the arming file exists.
      system.activationScripts.fleetlabMagicRollback = ''
        if [ -d /run/systemd/system ]; then
          mkdir -p ${rollbackDir}
          if [ -e ${rollbackDir}/rolling-back ]; then
            rm -f ${rollbackDir}/rolling-back
          else
            rm -f ${rollbackDir}/confirmed
            readlink /nix/var/nix/profiles/system > ${rollbackDir}/armed
          fi
        fi
      '';
      systemd.paths.fleetlab-magic-rollback = {
        description = "Start fleetlab's magic-rollback check when a switch arms it";
        wantedBy = [ "multi-user.target" ];
        pathConfig.PathExists = "${rollbackDir}/armed";
      };
      systemd.services.fleetlab-magic-rollback = {
        description = "Roll back to the previous generation unless fleetlab confirms the new one within ${toString cfg.magicRollback.timeout} s";
        restartIfChanged = false;
        stopIfChanged = false;
        serviceConfig.Type = "simple";
        environment.FLEETLAB_ROLLBACK_TIMEOUT = toString cfg.magicRollback.timeout;
        script = ''
          dir=${rollbackDir}
          gen=$(cat "$dir/armed")
          rm -f "$dir/armed"
          echo "$gen" > "$dir/waiting"
          left=$FLEETLAB_ROLLBACK_TIMEOUT
          while [ "$left" -gt 0 ]; do
            if [ -e "$dir/confirmed" ]; then
              echo "fleetlab: $gen confirmed"
              rm -f "$dir/waiting"
              exit 0
            fi
            sleep 1
            left=$((left - 1))
          done
          echo "fleetlab: $gen not confirmed within $FLEETLAB_ROLLBACK_TIMEOUT s; rolling back"
          echo "$gen" > "$dir/rolled-back"
          rm -f "$dir/waiting"
          : > "$dir/rolling-back"
          /run/current-system/sw/bin/nix-env -p /nix/var/nix/profiles/system --rollback
          exec /nix/var/nix/profiles/system/bin/switch-to-configuration switch
        '';
      };
    })
  ]);
}
