# Test fixture: evaluates fleetlab's guest module with nixpkgs' lib alone. The NixOS options the module sets are
# declared here as plain options (nixpkgs itself cannot be had on fleetlab's test machines), and pkgs is a stub of
# store paths. Returns what the module set, for nix/fleetlab-guest.test.ts to assert on.
{ lib, settings, aarch64 ? false }:
let
  units = lib.types.attrsOf (lib.types.submodule { freeformType = lib.types.attrsOf lib.types.anything; });
  nixosStubs = {
    options = {
      assertions = lib.mkOption { type = lib.types.listOf lib.types.unspecified; default = [ ]; };
      warnings = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
      boot.kernelParams = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
      boot.kernelModules = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
      boot.loader.systemd-boot.enable = lib.mkOption { type = lib.types.bool; default = false; };
      boot.loader.systemd-boot.extraInstallCommands = lib.mkOption { type = lib.types.lines; default = ""; };
      boot.loader.efi.efiSysMountPoint = lib.mkOption { type = lib.types.str; default = "/boot"; };
      environment.etc = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { freeformType = lib.types.attrsOf lib.types.anything; }); default = { }; };
      systemd.targets = lib.mkOption { type = units; default = { }; };
      services.openssh = lib.mkOption { type = lib.types.submodule { freeformType = lib.types.attrsOf lib.types.anything; }; default = { }; };
      users.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { freeformType = lib.types.attrsOf lib.types.anything; }); default = { }; };
      systemd.services = lib.mkOption { type = units; default = { }; };
      systemd.paths = lib.mkOption { type = units; default = { }; };
      system.activationScripts = lib.mkOption { type = lib.types.attrsOf lib.types.str; default = { }; };
    };
    config._module.args.pkgs = {
      coreutils = "/nix/store/stub-coreutils";
      bashInteractive = "/nix/store/stub-bash-interactive";
      gnused = "/nix/store/stub-gnused";
      iproute2 = "/nix/store/stub-iproute2";
      iputils = "/nix/store/stub-iputils";
      batctl = "/nix/store/stub-batctl";
      kmod = "/nix/store/stub-kmod";
      stdenv.hostPlatform.isAarch64 = aarch64;
      gnugrep = "/nix/store/stub-gnugrep";
      systemd = "/nix/store/stub-systemd";
      # writeShellScript's store path, and its text beside it for the assertions.
      writeShellScript = name: text: "/nix/store/stub-${name}";
    };
  };
  config = (lib.evalModules { modules = [ nixosStubs ../modules/fleetlab-guest.nix settings ]; }).config;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  warnings = config.warnings;
  kernelParams = config.boot.kernelParams;
  kernelModules = config.boot.kernelModules;
  services = config.systemd.services;
  paths = config.systemd.paths;
  activationScripts = config.system.activationScripts;
  targets = config.systemd.targets;
  etc = config.environment.etc;
  extraInstallCommands = config.boot.loader.systemd-boot.extraInstallCommands;
  openssh = config.services.openssh;
  users = config.users.users;
}
