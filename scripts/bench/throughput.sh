#!/usr/bin/env bash
# Issue 17's benchmark: rubric's own pass vs lm-eval 0.4.13's HF backend (f32, batch 16) on
# SmolLM2-135M-Instruct (f32 HF folder from scripts/quickstart.sh), one workload after another
# on the same machine, each tool at two sizes so that start-up drops out of the per-doc
# (marginal) figure:
#   SST-2 0-shot multiple choice (200 / 872 docs), MNLI 5-shot with `first_n` exemplars
#   (100 / 400 docs, fixtures/tasks/parity/mnli_first5.yaml), gsm8k_cot 8-shot (10 / 50 docs),
#   GSM8K 5-shot (10 / 50 docs). Both tools read the same task files (fixtures/tasks/parity).
# Also rubric with share_prefixes=false at the larger size of the two shared-prefix workloads.
# Wall time, peak resident memory, user and kernel CPU time of every command (/usr/bin/time);
# then scripts/bench/throughput.py prints the tables (marginal ratios, loglikelihood
# differences, identical generations; cores busy and the kernel's share per tool, issue 27).
# Env: MODEL, PY, OUT, ONLY (a workload name to run only it).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}"
MODEL=${MODEL:-$HOME/.cache/rubric/models/smollm2/hf}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/rubric-bench-throughput}
mkdir -p "$OUT"
cargo build --release -q
rubric="$CARGO_TARGET_DIR/release/rubric"
timed() { # name command...: "seconds peak_kb user_s sys_s" into $OUT/name.time
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  /usr/bin/time -f "%e %M %U %S" -o "$OUT/$name.time" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: $(cat "$OUT/$name.time") (s, peak KiB, user s, sys s)"
}
lmeval=(env HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$PY" -m lm_eval --model hf --model_args "pretrained=$MODEL,dtype=float32" --device cpu --batch_size 16 --include_path fixtures/tasks/parity --log_samples)
rub() { echo "$rubric" run --model-args "pretrained=$MODEL$1" --include-path fixtures/tasks/parity --no-cache --log-samples; }
workload() { # name task small large shared(yes/no)
  local name=$1 task=$2 small=$3 large=$4 shared=$5
  [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ] && return 0
  for n in "$small" "$large"; do
    timed "lmeval_${name}_$n" "${lmeval[@]}" --tasks "$task" --limit "$n" --output_path "$OUT/lmeval_${name}_$n"
    timed "rubric_${name}_$n" $(rub "") --tasks "$task" --limit "$n" --output-path "$OUT/rubric_${name}_$n"
  done
  if [ "$shared" = yes ]; then
    timed "rubricoff_${name}_$large" $(rub ",share_prefixes=false") --tasks "$task" --limit "$large" --output-path "$OUT/rubricoff_${name}_$large"
  fi
}
workload sst2 parity_sst2 200 872 no
workload mnli_first5 mnli_first5 100 400 yes
workload gsm8k_cot gsm8k_cot_parity 10 50 yes
workload gsm8k parity_gsm8k 10 50 no
{ lscpu | grep -m1 "Model name"; echo "nproc: $(nproc)"; } > "$OUT/machine.txt"
"$PY" scripts/bench/throughput.py "$OUT"
