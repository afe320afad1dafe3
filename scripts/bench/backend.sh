#!/usr/bin/env bash
# Benchmark: rubric (mistralrs, CPU) vs lm-eval 0.4.13's HF backend on SmolLM2-135M-Instruct (f32 HF
# folder from scripts/quickstart.sh), same prompts, same machine, one after the other:
#   SST-2 validation, 0-shot multiple choice (872 docs, 1,744 loglikelihood requests) and the first
#   200 docs of it (per-doc loglikelihood parity), GSM8K test 5-shot, first 50 docs (generation).
# lm-eval reads the same data through fixtures/tasks/parity (request parity: tests/requests_parity.rs).
# Needs .venv with lm-eval 0.4.13 and torch (CPU). Env: MODEL, PY, OUT, LMEVAL_BATCH (default 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}"
MODEL=${MODEL:-$HOME/.cache/rubric/models/smollm2/hf}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/rubric-bench-backend}
B=${LMEVAL_BATCH:-16}
GSM_LIMIT=${GSM_LIMIT:-50}
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build --release -q
rubric="$CARGO_TARGET_DIR/release/rubric"
timed() { # name command...: wall seconds into $OUT/name.time
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  echo "$(date +%s.%N) - $t0" | bc > "$OUT/$name.time"
  echo "$name: $(cat "$OUT/$name.time") s"
}
lmeval() { HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$PY" -m lm_eval --model hf --model_args "pretrained=$MODEL,dtype=float32" --device cpu --batch_size "$B" --include_path fixtures/tasks/parity --log_samples "$@"; }
rub() { "$rubric" run --model mistralrs --model-args "pretrained=$MODEL" --data-dir ../shared/data --no-cache --log-samples "$@"; }

timed lmeval_sst2_200 lmeval --tasks parity_sst2 --limit 200 --output_path "$OUT/lmeval_sst2_200"
timed rubric_sst2_200 rub --tasks sst2 --limit 200 --output-path "$OUT/rubric_sst2_200"
timed lmeval_sst2 lmeval --tasks parity_sst2 --output_path "$OUT/lmeval_sst2"
timed rubric_sst2 rub --tasks sst2 --output-path "$OUT/rubric_sst2"
timed lmeval_gsm8k lmeval --tasks parity_gsm8k --limit "$GSM_LIMIT" --output_path "$OUT/lmeval_gsm8k"
timed rubric_gsm8k rub --tasks gsm8k --limit "$GSM_LIMIT" --output-path "$OUT/rubric_gsm8k"
"$PY" scripts/bench/compare_samples.py "$OUT" "$GSM_LIMIT"
