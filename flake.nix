# fleetlab's flake: the NixOS guest module, an image builder per fleetlab profile, the fleetlab package and a dev shell.
# At the repository root so that `inputs.fleetlab.url = "github:<org>/fleetlab"` works without `?dir=`.
{
  description = "fleetlab: VM test harness and hardware-in-the-loop lab runner for NixOS device fleets";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      nixosModules.fleetlab-guest = import ./nix/modules/fleetlab-guest.nix;
      nixosModules.default = self.nixosModules.fleetlab-guest;

      # lib.mkFleetImage { system = "x86_64-linux"; modules = [ ./kiosk.nix ]; format = "raw-efi"; }
      lib.mkFleetImage = import ./nix/lib/mk-fleet-image.nix {
        inherit nixpkgs;
        fleetlabModule = self.nixosModules.fleetlab-guest;
      };

      # lib.mkFleetlabTest { name = "nat"; nodes = { server = ./server.nix; client = { profile = "aarch64-uefi"; modules = [ ./client.nix ]; }; }; }
      # builds every node's image and result/fleetlab.json, which a scenario loads with fromManifest(). `system` is the
      # host that builds the manifest (default x86_64-linux).
      lib.mkFleetlabTest =
        { system ? "x86_64-linux", ... }@args:
        import ./nix/lib/mk-fleetlab-test.nix {
          inherit (nixpkgs) lib;
          inherit (self.lib) mkFleetImage;
          inherit (nixpkgs.legacyPackages.${system}) linkFarm writeText;
        } (removeAttrs args [ "system" ]);

      packages = forAllSystems (pkgs: rec {
        fleetlab = pkgs.callPackage ./nix/package.nix { src = self; };
        default = fleetlab;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_24
            pkgs.qemu
            pkgs.OVMF.fd
            pkgs.ubootQemuAarch64
            pkgs.xorriso
            pkgs.mtools
            pkgs.dosfstools
            pkgs.e2fsprogs
            pkgs.util-linux
          ];
        };
      });
    };
}
