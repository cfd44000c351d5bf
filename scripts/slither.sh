#!/usr/bin/env bash
# Static analysis of the contracts with slither over the forge build (see docs/slither.md).
# Slither lives in its own venv (.venv-slither/) so its dependencies stay out of the node's.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-slither/bin/slither ]; then
  python3 -m venv .venv-slither
  .venv-slither/bin/pip install -q --disable-pip-version-check slither-analyzer
fi
cd contracts
export PATH="$PWD/node_modules/.bin:$PATH" FOUNDRY_OUT=out-slither FOUNDRY_CACHE_PATH=cache-slither
exec ../.venv-slither/bin/slither . --foundry-out-directory out-slither --filter-paths node_modules \
  --exclude-informational --exclude-optimization --exclude-low "$@"
