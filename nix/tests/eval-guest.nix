# Test fixture: evaluates fleetlab's guest module with nixpkgs' lib alone. The NixOS options the module sets are
# declared here as plain options (nixpkgs itself cannot be had on fleetlab's test machines), and pkgs is a stub of
# store paths. Returns what the module set, for nix/fleetlab-guest.test.ts to assert on.
{ lib, settings }:
let
  units = lib.types.attrsOf (lib.types.submodule { freeformType = lib.types.attrsOf lib.types.anything; });
  nixosStubs = {
    options = {
      assertions = lib.mkOption { type = lib.types.listOf lib.types.unspecified; default = [ ]; };
      boot.kernelParams = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
      boot.kernelModules = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
      boot.loader.systemd-boot.enable = lib.mkOption { type = lib.types.bool; default = false; };
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
    };
  };
  config = (lib.evalModules { modules = [ nixosStubs ../modules/fleetlab-guest.nix settings ]; }).config;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  kernelParams = config.boot.kernelParams;
  kernelModules = config.boot.kernelModules;
  services = config.systemd.services;
  paths = config.systemd.paths;
  activationScripts = config.system.activationScripts;
}
