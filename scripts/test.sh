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
# Three tiers: "suite" (everything but the long matrices and the fleets, about 26 minutes on 2 cores), "matrix"
# (updates and rollbacks on every boot loader, power cuts at every point) and "fleet" (16-node fleets, alone: about 4
# minutes); vitest.config.ts lists them. All run by default, in that order; FLEETLAB_TEST_TIERS=suite
# (npm run test:suite) runs one. Files named on the command line run as given.
tiers=${FLEETLAB_TEST_TIERS:-suite matrix fleet}
[ $# -gt 0 ] && tiers=given
rc=0
reports=()
for tier in $tiers; do
  out=reports/vitest-$tier.json
  rm -f "$out"
  [ "$tier" = given ] || echo "== tier $tier =="
  FLEETLAB_TEST_TIER=$tier node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json="$out" "$@" || rc=1
  reports+=("$out")
done
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) { failed++; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
' "${reports[@]}" || echo "vitest: 0 passed, 1 failed"
exit $rc
