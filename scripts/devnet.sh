#!/usr/bin/env bash
# Installs what the devnet needs (scripts/install.sh --devnet: no model training, no test tools), then runs the
# devnet with its nodes until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh --devnet
exec .venv/bin/alignment-node devnet up "$@"
