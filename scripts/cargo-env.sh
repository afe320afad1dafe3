# Sourced by scripts/test.sh and scripts/quickstart.sh: one cargo target folder outside the
# clone (dependencies compile once per machine), kept honest across clones. Cargo reuses a
# crate's artifacts built from another checkout at another path when that checkout's files are
# unchanged, and the binary then carries the other checkout's CARGO_MANIFEST_DIR (its tasks/);
# so when the folder was last used by another clone, rubric's own artifacts are cleaned first.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}"
rubric_root=$(pwd -P)
mkdir -p "$CARGO_TARGET_DIR"
if [ "$(cat "$CARGO_TARGET_DIR/.rubric-source" 2>/dev/null)" != "$rubric_root" ]; then
  cargo clean --release -q -p rubric 2>/dev/null || true
  echo "$rubric_root" > "$CARGO_TARGET_DIR/.rubric-source"
fi
