#!/usr/bin/env bash
# Runs every test: the contracts' forge tests (unit, fuzz, invariant, gas budgets) and the Python tests.
# Installs what it needs first (scripts/install.sh). The contracts compile (scripts/build_contracts.sh, which also
# checks the committed artifacts) and their forge tests run in the background while the models train and the
# Python tests run: the Python side uses the committed artifacts, never the build.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh --deps-only || exit 1

forge_log=$(mktemp)
( ./scripts/build_contracts.sh && cd contracts && node_modules/.bin/forge test ) >"$forge_log" 2>&1 &
forge_pid=$!

status=0
./scripts/install.sh || status=1

echo "== pytest"
if [ "$status" -eq 0 ]; then
  .venv/bin/python -m pytest -q "$@"
  rc=$?
  # pytest exits 5 when it collected no test: that is not a failure of the code under test.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
fi

echo "== contracts: build, committed artifacts check, forge test"
wait "$forge_pid" || status=1
cat "$forge_log"
rm -f "$forge_log"
exit $status
