#!/usr/bin/env bash
# Compiles the contracts (forge through npm's solcjs: several minutes on 2 cores) and checks that the committed
# artifacts (alignment_node/chain/artifacts, which the node and the devnet use) are those of the sources.
#   --export   rewrite the committed artifacts from the build instead of checking them
set -euo pipefail
cd "$(dirname "$0")/.."
(cd contracts && node_modules/.bin/forge build --quiet)
if [ "${1:-}" = "--export" ]; then
  .venv/bin/python scripts/export_artifacts.py
else
  .venv/bin/python scripts/export_artifacts.py --check
fi
