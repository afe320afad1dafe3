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
exec cargo test --release "$@"
