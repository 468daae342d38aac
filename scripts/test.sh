#!/usr/bin/env bash
# The test suite: sets the host up (packages, npm dependencies, testbed images), runs vitest on the
# pinned Node, and ends with one plain "N passed, N failed" line that any CI can read.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 2
export PATH="$PWD/node_modules/.bin:$PATH"
mkdir -p reports
node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "$@"
rc=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync("reports/vitest.json", "utf8"));
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || echo "vitest: 0 passed, 1 failed"
exit $rc
