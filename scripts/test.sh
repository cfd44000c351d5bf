#!/usr/bin/env bash
# Runs every test: the contracts' forge tests (unit, fuzz, invariant, gas budgets) and the Python tests.
# Installs what it needs first (scripts/install.sh). The contracts compile (scripts/build_contracts.sh, which also
# checks the committed artifacts) and their forge tests run in the background while the models train and the
# first pytest phase runs; they end before the "solo" tests, which need the machine to themselves.
# The Python side uses the committed artifacts, never the build.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh --deps-only || exit 1

# At the lowest priority (nice 19: same session, so the scheduler honours it): the build takes the cycles that the
# model training and the devnet tests leave idle, and never slows a timing-sensitive test.
forge_log=$(mktemp)
( nice -n 19 ./scripts/build_contracts.sh && cd contracts && nice -n 19 node_modules/.bin/forge test ) >"$forge_log" 2>&1 &
forge_pid=$!

status=0
installed=1
./scripts/install.sh || { status=1; installed=0; }

# Two workers (tests/conftest.py keeps the CPU-bound tests on one at a time), then the "solo" tests alone.
# Torch gets one thread per process in the first phase, so a CPU-bound test never takes both cores.
run_pytest() {
  "$@"
  rc=$?
  # pytest exits 5 when it collected no test: that is not a failure of the code under test.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
}
if [ "$installed" -eq 1 ]; then
  echo "== pytest (2 workers)"
  OMP_NUM_THREADS=1 run_pytest .venv/bin/python -m pytest -q -n 2 --dist loadgroup -m "not solo" "$@"
fi
wait "$forge_pid"
forge_rc=$?
if [ "$installed" -eq 1 ]; then
  echo "== pytest (solo tests)"
  run_pytest .venv/bin/python -m pytest -q -m solo "$@"
fi

echo "== contracts: build, committed artifacts check, forge test"
[ "$forge_rc" -eq 0 ] || status=1
cat "$forge_log"
rm -f "$forge_log"
exit $status
