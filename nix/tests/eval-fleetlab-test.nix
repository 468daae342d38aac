# Test fixture: fleetlab.lib.mkFleetlabTest (nix/lib/mk-fleetlab-test.nix) evaluated with nixpkgs' lib alone.
# mkFleetImage's stand-in evaluates each node's modules with lib.evalModules (NixOS options as freeform attributes,
# networking.hostName and the build outputs declared) and returns an image carrying that evaluated system, as the
# real one does; linkFarm and writeText are stand-ins that keep what they were given. nixpkgs itself cannot be had
# on fleetlab's test machines. Returns the manifest, the farm's entries and each node's evaluated hostName.
{ lib, args }:
let
  freeform = lib.types.attrsOf lib.types.anything;
  mkFleetImage =
    { system, format, modules }:
    let
      eval = lib.evalModules {
        specialArgs = { modulesPath = "/stub/nixos/modules"; };
        modules = [
          ({ config, ... }: {
            freeformType = freeform;
            options.networking = lib.mkOption {
              type = lib.types.submodule {
                freeformType = freeform;
                options.hostName = lib.mkOption { type = lib.types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$"; default = "nixos"; };
              };
              default = { };
            };
            options.system.build.toplevel = lib.mkOption { type = lib.types.str; readOnly = true; };
            options.sdImage.imageName = lib.mkOption { type = lib.types.str; default = "nixos-sd-image-${system}.img"; };
            config.system.build.toplevel = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" "${system}${config.networking.hostName}")}-nixos-system-${config.networking.hostName}";
            config._module.args.pkgs = { };
          })
        ] ++ modules;
      };
    in
    {
      outPath = "/nix/store/stub-image-${eval.config.networking.hostName}-${format}";
      nixos = { inherit (eval) config; };
    };
  linkFarm = name: entries: { inherit name entries; };
  writeText = name: text: { outPath = "/nix/store/stub-${name}"; inherit text; };
  result = import ../lib/mk-fleetlab-test.nix { inherit lib mkFleetImage linkFarm writeText; } args;
in
{
  inherit (result) manifest;
  manifestText = (lib.findFirst (e: e.name == "fleetlab.json") null result.entries).path.text;
  links = map (e: { inherit (e) name; path = "${e.path}"; }) result.entries;
  hostNames = lib.mapAttrs (_: n: n.config.networking.hostName) result.nodes;
}
