#!/usr/bin/env bash
# The test command (`npm test`): installs what the tests need on a fresh Debian machine (as root),
# type-checks and lints, runs every Vitest test, and ends with one plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

# System packages the tests drive for real (BPF toolchain, servers, clients).
missing=()
while read -r pkg; do
  [ -z "$pkg" ] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep "install ok installed" > /dev/null || missing+=("$pkg")
done < <(grep -v '^\s*#' test/system-packages.txt)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test/run.sh: installing ${missing[*]}"
  apt-get update -qq >/dev/null
  # Don't let package scripts start system-wide services: tests start their own on private ports.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
    echo "test/run.sh: apt-get install failed"; rm -f /usr/sbin/policy-rc.d; echo "0 passed, 1 failed"; exit 1; }
  rm -f /usr/sbin/policy-rc.d
fi

[ -d node_modules ] || npm ci --no-audit --no-fund

failed_checks=0
echo "test/run.sh: type-checking"
npx tsc -p tsconfig.json --noEmit || failed_checks=$((failed_checks + 1))
echo "test/run.sh: linting"
npx eslint . || failed_checks=$((failed_checks + 1))

mkdir -p test-results
rm -f test-results/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile=test-results/vitest.json
vitest_status=$?

node -e '
const fs = require("fs");
let r = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTotalTests: 0 };
try { r = JSON.parse(fs.readFileSync("test-results/vitest.json", "utf8")); } catch { console.error("test/run.sh: no Vitest report"); }
const vitestStatus = Number(process.argv[2]);
// Vitest also fails a run on unhandled errors that no test owns; count that as one failure.
const unowned = vitestStatus !== 0 && r.numFailedTests === 0 && r.numTotalTests > 0 ? 1 : 0;
const failed = r.numFailedTests + Number(process.argv[1]) + (r.numTotalTests === 0 ? 1 : 0) + unowned;
if (r.numTotalTests === 0) console.error("test/run.sh: no test ran; counted as a failure");
if (unowned) console.error(`test/run.sh: vitest exited ${vitestStatus} with no failed test (unhandled errors, see above); counted as a failure`);
console.log(`${r.numPassedTests} passed, ${failed} failed, ${r.numPendingTests} skipped`);
process.exit(failed > 0 || vitestStatus !== 0 ? 1 : 0);
' "$failed_checks" "$vitest_status"
