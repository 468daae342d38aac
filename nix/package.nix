# fleetlab as a Nix package: its sources with their npm dependencies (from package-lock.json through importNpmLock,
# so no hash to keep in step), run by Node 24 with type stripping. The sources live under share/, not under a
# node_modules directory, because Node strips types only outside node_modules.
{ lib, stdenvNoCC, importNpmLock, nodejs_24, makeWrapper, qemu, src }:
stdenvNoCC.mkDerivation {
  pname = "fleetlab";
  version = (lib.importJSON "${src}/package.json").version;
  inherit src;
  npmDeps = importNpmLock { npmRoot = src; };
  nativeBuildInputs = [ nodejs_24 importNpmLock.npmConfigHook makeWrapper ];
  # The pinned Node of the npm packages node-linux-<arch> (optional dependencies) is not needed: Nix gives Node itself.
  npmFlags = [ "--ignore-scripts" "--omit=optional" ];
  dontBuild = true;
  installPhase = ''
    runHook preInstall
    mkdir -p $out/share/fleetlab $out/bin
    cp -r package.json harness machines scenarios node_modules $out/share/fleetlab/
    makeWrapper ${nodejs_24}/bin/node $out/bin/fleetlab \
      --add-flags $out/share/fleetlab/harness/cli/main.ts \
      --set FLEETLAB_SKIP_SETUP 1 \
      --prefix PATH : ${lib.makeBinPath [ qemu ]}
    runHook postInstall
  '';
  meta = {
    description = "VM test harness and hardware-in-the-loop lab runner for NixOS device fleets";
    license = lib.licenses.mit;
    mainProgram = "fleetlab";
    platforms = lib.platforms.linux;
  };
}
