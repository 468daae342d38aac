# NixOS nodes declared in Nix, as a NixOS test driver test declares them, built into fleetlab machines:
#
#   fleetlab.lib.mkFleetlabTest {
#     name = "nat";
#     nodes = {
#       server = { services.httpd.enable = true; };                     # a NixOS module: profile x86_64-uefi
#       client = { profile = "aarch64-uefi"; modules = [ ./client.nix ]; };
#       routerDummyNoNat = { toplevelOnly = true; modules = [ ./router.nix { networking.nat.enable = false; } ]; };
#     };
#   }
#
# builds every node's image in the format its fleetlab profile boots (mkFleetImage, with fleetlab's guest module) and
# writes result/fleetlab.json, the manifest a scenario loads:
#
#   machines: fromManifest('./result/fleetlab.json', ['server', 'client'])
#
# { "version": 1, "name": "nat", "nodes": { "server": { "profile": "x86_64-uefi", "system": "x86_64-linux",
#   "format": "raw-efi", "image": "server/nixos.img", "toplevel": "/nix/store/…-nixos-system-server-…" }, … } }
#
# Paths in it are relative to the manifest's folder (result/<node>/ links to the node's image), toplevels are store
# paths (NTD's nodes.<name>.config.system.build.toplevel: a scenario switches to one with nixos.switch()). A node that
# is a plain module gets `defaultProfile`; `toplevelOnly` builds no image (a configuration a test switches to).
# `system` is the host that builds the manifest. The result also carries `.nodes`, every node's evaluated system.
{ lib, mkFleetImage, linkFarm, writeText }:
{ name ? "fleetlab-test", nodes, defaultProfile ? "x86_64-uefi" }:
let
  # What each profile boots: the system to build for and mkFleetImage's format.
  profiles = {
    x86_64-uefi = { system = "x86_64-linux"; format = "raw-efi"; };
    x86_64-bios = { system = "x86_64-linux"; format = "raw-bios"; };
    x86_64-direct = { system = "x86_64-linux"; format = "kernel"; };
    aarch64-uefi = { system = "aarch64-linux"; format = "raw-efi"; };
    aarch64-uboot = { system = "aarch64-linux"; format = "sd-image"; };
    raspi3b = { system = "aarch64-linux"; format = "sd-image"; };
  };
  nodeKeys = [ "profile" "modules" "toplevelOnly" ];
  # A node: a NixOS module (an attribute set without `profile`, or a function), or { profile?, modules, toplevelOnly? }.
  normalise = nodeName: node:
    let
      isSpec = builtins.isAttrs node && (node ? profile || node ? modules || node ? toplevelOnly);
      spec = if isSpec then node else { modules = [ node ]; };
      profile = spec.profile or defaultProfile;
      unknownKeys = lib.subtractLists nodeKeys (builtins.attrNames spec);
    in
    if !(builtins.match "[a-zA-Z0-9_-]+" nodeName != null) then
      throw "fleetlab.lib.mkFleetlabTest: node name \"${nodeName}\": use letters, digits, - and _ (it is a machine's role in the scenario)"
    else if isSpec && unknownKeys != [ ] then
      throw "fleetlab.lib.mkFleetlabTest: node ${nodeName}: unknown attribute ${builtins.concatStringsSep ", " unknownKeys}; a node is a NixOS module, or { profile; modules; toplevelOnly; }"
    else if !(profiles ? ${profile}) then
      throw "fleetlab.lib.mkFleetlabTest: node ${nodeName}: profile \"${profile}\" has no NixOS image format here; use one of: ${builtins.concatStringsSep ", " (builtins.attrNames profiles)}"
    else
      {
        inherit profile;
        inherit (profiles.${profile}) system format;
        modules = [ { networking.hostName = lib.mkDefault nodeName; } ] ++ (spec.modules or [ ]);
        toplevelOnly = spec.toplevelOnly or false;
      };
  built = lib.mapAttrs (
    nodeName: node:
    let
      n = normalise nodeName node;
      image = mkFleetImage { inherit (n) system format modules; };
      config = image.nixos.config;
      toplevel = "${config.system.build.toplevel}";
      # Where the image is inside result/<node>/, by format.
      files =
        if n.toplevelOnly then
          { }
        else if n.format == "raw-efi" || n.format == "raw-bios" then
          { image = "${nodeName}/nixos.img"; }
        else if n.format == "sd-image" then
          { image = "${nodeName}/sd-image/${config.sdImage.imageName}"; }
        else
          {
            kernel = "${nodeName}/kernel";
            initrd = "${nodeName}/initrd";
            append = "init=${toplevel}/init console=ttyS0";
          };
    in
    {
      inherit image;
      nixos = image.nixos;
      entry = { inherit (n) profile system format; inherit toplevel; } // files;
      link = lib.optional (!n.toplevelOnly) { name = nodeName; path = image; };
    }
  ) nodes;
  manifest = {
    version = 1;
    inherit name;
    nodes = lib.mapAttrs (_: b: b.entry) built;
  };
  manifestFile = writeText "fleetlab.json" (builtins.toJSON manifest);
in
(linkFarm name (lib.concatMap (b: b.link) (builtins.attrValues built) ++ [ { name = "fleetlab.json"; path = manifestFile; } ]))
// {
  inherit manifest;
  nodes = lib.mapAttrs (_: b: b.nixos) built;
}
