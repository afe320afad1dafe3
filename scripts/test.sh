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
exec cargo test --release "$@"
