#!/usr/bin/env bash
# Benchmark: bootstrap standard errors over 10,000 docs, rubric (examples/bench_bootstrap.rs)
# next to lm-eval 0.4.13's bootstrap_stderr in the same run. Needs .venv with lm-eval.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}"
PY=${PY:-.venv/bin/python}
ITERS=${ITERS:-100000}
cargo run --release -q --example bench_bootstrap -- "$ITERS"
$PY scripts/bench/bootstrap_peer.py "$ITERS" 2>/dev/null | tail -1
