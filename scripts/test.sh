#!/usr/bin/env bash
# Installs everything, type-checks, and runs the whole test suite against real components. As
# root, or as a sudoer (it re-runs itself with sudo).
# Ends with the plain line "N passed, N failed" so a run that executed no test is visible.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/as-root.sh"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"

echo "test: type-checking"
npx tsc -p .

report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
  if (r.numTotalTests === 0) process.exit(1);
' "$report" || status=1
exit $status
