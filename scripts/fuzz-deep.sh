#!/usr/bin/env bash
# The contracts' fuzz and invariant tests with many more runs (foundry profile "deep": 10,000 fuzz runs per
# test, 10,000 invariant runs of depth 40; docs/halmos.md; figures in bench/README.md). Not part of scripts/test.sh or CI: run it by hand
# before a release or after touching the sale, the protocol or the vault. Its own build directories
# (out-deep/, cache-deep/). Extra arguments go to `forge test`, e.g. one file:
#   ./scripts/fuzz-deep.sh --match-path test/NodeSale.t.sol
# FUZZ_RUNS / INVARIANT_RUNS / INVARIANT_DEPTH override the profile's numbers.
set -euo pipefail
cd "$(dirname "$0")/../contracts"
export PATH="$PWD/node_modules/.bin:$PATH" FOUNDRY_PROFILE=deep
[ -n "${FUZZ_RUNS:-}" ] && export FOUNDRY_FUZZ_RUNS="$FUZZ_RUNS"
[ -n "${INVARIANT_RUNS:-}" ] && export FOUNDRY_INVARIANT_RUNS="$INVARIANT_RUNS"
[ -n "${INVARIANT_DEPTH:-}" ] && export FOUNDRY_INVARIANT_DEPTH="$INVARIANT_DEPTH"
exec forge test "$@"
