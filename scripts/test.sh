#!/usr/bin/env bash
# Runs every test: the contracts' forge tests (unit, fuzz, invariant, gas budgets) and the Python tests.
# Installs what it needs first (scripts/install.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh || exit 1

status=0
echo "== forge test"
(cd contracts && node_modules/.bin/forge test) || status=1

echo "== pytest"
.venv/bin/python -m pytest -q "$@"
rc=$?
# pytest exits 5 when it collected no test: that is not a failure of the code under test.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
exit $status
