#!/usr/bin/env bash
# The test suite: unit tests, golden tests against the reference tools, CLI and end-to-end
# tests (real mistralrs inference on models the tests build). Tests that need ../shared/data
# skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
# one cargo profile (release) for the main job and the tests, so dependencies compile once;
# a target folder outside the clone lets repeated runs on one machine reuse the build
source scripts/cargo-env.sh
exec cargo test --release "$@"
