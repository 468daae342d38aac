#!/usr/bin/env bash
# The test suite: sets the host up (packages, npm dependencies, testbed images), runs vitest on the
# pinned Node, and ends with one plain "N passed, N failed" line that any CI can read.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 2
export PATH="$PWD/node_modules/.bin:$PATH"
# nixpkgs' lib for the NixOS module's evalModules tests (nix/): yours in $FLEETLAB_NIXPKGS_LIB, else the vendored
# copy beside the repository (../shared/vendor), unpacked once into the cache. Without either they are skipped, saying why.
if [ -z "${FLEETLAB_NIXPKGS_LIB:-}" ]; then
  vendored=$(ls ../shared/vendor/nixpkgs-lib-*.tar.gz 2>/dev/null | head -n 1 || true)
  if [ -n "$vendored" ]; then
    dest="${FLEETLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetlab}/$(basename "$vendored" .tar.gz)"
    if [ ! -e "$dest/nixpkgs-lib/lib/default.nix" ]; then
      mkdir -p "$dest.tmp.$$" && tar -xzf "$vendored" -C "$dest.tmp.$$" && rm -rf "$dest" && mv "$dest.tmp.$$" "$dest"
    fi
    export FLEETLAB_NIXPKGS_LIB="$dest/nixpkgs-lib/lib"
  fi
fi
mkdir -p reports
node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@"
rc=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync("reports/vitest.json", "utf8"));
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || echo "vitest: 0 passed, 1 failed"
exit $rc
