#!/usr/bin/env bash
# Symbolic checks of the contracts with halmos (docs/halmos.md): the `check_*` functions in contracts/halmos/.
# halmos lives in its own venv (.venv-halmos/) so its dependencies (z3, yices) stay out of the node's.
# Builds src + contracts/halmos only (foundry profile "halmos", its own out/cache), never the forge tests.
# Exits non-zero on a counterexample (or a check that could not run). By default it runs every check: the sale
# (about a minute), commit/reveal (about 29 minutes) and the reward vault (about 13 minutes). Other arguments go to
# halmos, e.g.
#   ./scripts/halmos.sh --match-contract NodeSaleCheck
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-halmos/bin/halmos ]; then
  python3 -m venv .venv-halmos
  .venv-halmos/bin/pip install -q --disable-pip-version-check 'halmos==0.3.3'
fi
cd contracts
export PATH="$PWD/node_modules/.bin:$PATH" FOUNDRY_PROFILE=halmos
# --loop 8: the sale mints at most 4 licenses per buy in the checks and their own loops are shorter.
if [ "${1:-}" = "--all" ]; then
  shift  # the default since the reward vault's checks finish; kept for older instructions
fi
exec ../.venv-halmos/bin/halmos --root . --forge-build-out out-halmos --loop 8 --solver-timeout-assertion 0 "$@"
