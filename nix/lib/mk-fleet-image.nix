# Builds a NixOS image in the format a fleetlab profile boots, with fleetlab's guest module enabled:
#
#   fleetlab.lib.mkFleetImage { system = "x86_64-linux"; modules = [ ./kiosk.nix ]; format = "raw-efi"; }
#
# format       what you get (result/...)             boot it with
#   raw-efi    GPT disk, ESP, systemd-boot (nixos.img) --machine x86_64-uefi|aarch64-uefi --image result/nixos.img
#   raw-bios   MBR disk, GRUB (nixos.img)              --machine x86_64-bios --image result/nixos.img
#   iso        installer ISO (iso/*.iso)               --machine x86_64-uefi|x86_64-bios|t100ta --image result/iso/*.iso
#   sd-image   aarch64 SD image (sd-image/*.img)       --machine raspi3b|aarch64-uboot --image result/sd-image/*.img
#   kernel     kernel, initrd and init (a directory)   --machine x86_64-direct --kernel result/kernel --initrd result/initrd
#                                                      --append "init=$(readlink result/init) console=ttyS0"
# The result also carries `.nixos`, the evaluated system (its config, its toplevel).
{ nixpkgs, fleetlabModule }:
{ system, modules ? [ ], format }:
let
  formats = {
    raw-efi = [
      ({ config, lib, pkgs, modulesPath, ... }: {
        boot.loader.systemd-boot.enable = true;
        boot.loader.efi.canTouchEfiVariables = false;
        fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
        fileSystems."/boot" = { device = "/dev/disk/by-label/ESP"; fsType = "vfat"; };
        system.build.fleetlabImage = import "${modulesPath}/../lib/make-disk-image.nix" {
          inherit config lib pkgs;
          format = "raw";
          partitionTableType = "efi";
        };
      })
    ];
    raw-bios = [
      ({ config, lib, pkgs, modulesPath, ... }: {
        boot.loader.grub.device = "/dev/vda";
        # GRUB draws its menu on gfxterm; the serial line is where fleetlab (and a person at a board's console) reads it.
        boot.loader.grub.extraConfig = ''
          serial --unit=0 --speed=115200
          terminal_input serial console
          terminal_output serial console
        '';
        fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
        system.build.fleetlabImage = import "${modulesPath}/../lib/make-disk-image.nix" {
          inherit config lib pkgs;
          format = "raw";
          partitionTableType = "legacy";
        };
      })
    ];
    iso = [
      ({ config, modulesPath, ... }: {
        imports = [ "${modulesPath}/installer/cd-dvd/installation-cd-minimal.nix" ];
        system.build.fleetlabImage = config.system.build.isoImage;
      })
    ];
    sd-image = [
      ({ config, modulesPath, ... }: {
        imports = [ "${modulesPath}/installer/sd-card/sd-image-aarch64.nix" ];
        fleetlab.guest.serialConsoles = [ "ttyAMA0,115200" ];
        # A plain .img (nixpkgs compresses it to .img.zst by default), which fleetlab boots and flashes as it is.
        sdImage.compressImage = false;
        system.build.fleetlabImage = config.system.build.sdImage;
      })
    ];
    kernel = [
      ({ config, pkgs, ... }: {
        boot.loader.grub.enable = false;
        fileSystems."/" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
        system.build.fleetlabImage = pkgs.linkFarm "fleetlab-kernel-boot" [
          { name = "kernel"; path = "${config.system.build.kernel}/${config.system.boot.loader.kernelFile}"; }
          { name = "initrd"; path = "${config.system.build.initialRamdisk}/${config.system.boot.loader.initrdFile}"; }
          { name = "init"; path = "${config.system.build.toplevel}/init"; }
        ];
      })
    ];
  };
  formatModules =
    formats.${format}
      or (throw "fleetlab.lib.mkFleetImage: unknown format \"${format}\"; use one of: ${builtins.concatStringsSep ", " (builtins.attrNames formats)}");
  nixos = nixpkgs.lib.nixosSystem {
    inherit system;
    modules = [ fleetlabModule { fleetlab.guest.enable = true; } ] ++ formatModules ++ modules;
  };
in
nixos.config.system.build.fleetlabImage // { inherit nixos; }
