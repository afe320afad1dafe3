#!/usr/bin/env bash
# The property tests (tests/properties.rs) at scale: CASES per property (default 166,667, so
# the six properties run 1,000,000 cases in all). Prints each property's result and the time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cargo-env.sh
CASES=${CASES:-166667}
cargo test --release --test properties --no-run -q
start=$(date +%s)
PROPTEST_CASES=$CASES cargo test --release --test properties -- --test-threads 2 2>&1 | grep -E "^test |test result"
echo "properties: 6 x $CASES cases in $(( $(date +%s) - start )) s"
