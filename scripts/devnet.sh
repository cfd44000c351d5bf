#!/usr/bin/env bash
# Installs everything (scripts/install.sh), then runs the devnet with its nodes until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/alignment-node devnet up "$@"
