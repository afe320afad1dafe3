#!/usr/bin/env bash
# Benchmark: rubric's own passes vs lm-eval 0.4.13's HF backend on models of realistic size with
# random weights (`scripts/golden/architectures.py --bench DIR` makes them): a Qwen3-0.6B-shaped
# decoder and a Flan-T5-base-shaped encoder-decoder. Same machine, one command after the other:
#   SST-2 validation, 0-shot multiple choice, first N docs (loglikelihood), and
#   GSM8K test (Qwen3: 5-shot; T5: 0-shot), first M docs, max_gen_toks 32 (generation).
# Start-up is measured apart: each command also runs with --limit 1, and throughput is read at
# the margin, (t_N - t_1) / (N - 1). Needs .venv with lm-eval 0.4.13 and torch (CPU).
# Env: MODELS (default /work/bench-models), PY, OUT, LMEVAL_BATCH (16), SST2_N, GSM_N.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}"
MODELS=${MODELS:-/work/bench-models}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/rubric-bench-arch}
B=${LMEVAL_BATCH:-16}
SST2_N=${SST2_N:-100}
GSM_N=${GSM_N:-8}
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build --release -q
rubric="$CARGO_TARGET_DIR/release/rubric"
timed() { # name command...: wall seconds into $OUT/name.time, peak RSS (KiB) into name.rss
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUT/$name.tr" "$@" > "$OUT/$name.log" 2>&1
  cut -d' ' -f1 "$OUT/$name.tr" > "$OUT/$name.time"; cut -d' ' -f2 "$OUT/$name.tr" > "$OUT/$name.rss"
  echo "$name: $(cat "$OUT/$name.time") s, peak RSS $(( $(cat "$OUT/$name.rss") / 1024 )) MiB"
}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
lmeval() { echo "$PY" -m lm_eval --model hf --model_args "pretrained=$1,dtype=float32" --device cpu --batch_size "$B" --include_path fixtures/tasks/parity --log_samples; }
rub() { echo "$rubric" run --model mistralrs --model-args "pretrained=$1" --data-dir ../shared/data --no-cache --log-samples; }
for m in qwen3_0.6b flan_t5_base; do
  dir="$MODELS/$m"
  shots=5; [ "$m" = flan_t5_base ] && shots=0
  for n in 1 "$SST2_N"; do
    timed "lmeval_${m}_sst2_$n" $(lmeval "$dir") --tasks parity_sst2 --limit "$n" --output_path "$OUT/lmeval_${m}_sst2_$n"
    timed "rubric_${m}_sst2_$n" $(rub "$dir") --tasks sst2 --limit "$n" --output-path "$OUT/rubric_${m}_sst2_$n"
  done
  for n in 1 "$GSM_N"; do
    timed "lmeval_${m}_gsm8k_$n" $(lmeval "$dir") --tasks parity_gsm8k --num_fewshot "$shots" --gen_kwargs max_gen_toks=32 --limit "$n" --output_path "$OUT/lmeval_${m}_gsm8k_$n"
    timed "rubric_${m}_gsm8k_$n" $(rub "$dir") --tasks gsm8k --num-fewshot "$shots" --gen-kwargs max_gen_toks=32 --limit "$n" --output-path "$OUT/rubric_${m}_gsm8k_$n"
  done
done
"$PY" scripts/bench/compare_arch.py "$OUT" "$SST2_N" "$GSM_N"
