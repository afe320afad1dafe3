#!/usr/bin/env bash
# The GPU kit: rubric's own pass against transformers on one GPU, in one time-boxed run
# (scripts/gpu/kit.py says what it measures). Writes gpu_check.json and gpu_check.md into $OUT
# (default ./gpu-out), and keeps what it measured when a step fails.
#
# On the GPU machine (no Rust, no network; Python with torch and transformers): from the repo
# root, with .gpu/ from scripts/gpu/build.sh beside it,
#   bash scripts/gpu/check.sh              (at most ~8 minutes on an H200)
# Here, end to end on the CPU with tiny shapes (part of the test suite, tests/gpu_kit.rs):
#   bash scripts/gpu/check.sh --cpu        (RUBRIC_BIN: the binary, default the release build;
#                                           KIT_PYTHON: a Python with torch + transformers)
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$PWD/gpu-out}"
work="${KIT_WORK:-$(mktemp -d /tmp/rubric-gpu-kit.XXXXXX)}"
mkdir -p "$out" "$work"
if [ "${1:-}" = "--cpu" ]; then
  shift
  rubric="${RUBRIC_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}/release/rubric}"
  python="${KIT_PYTHON:-$HOME/.cache/rubric/gpu-check-venv/bin/python}"
  exec "$python" scripts/gpu/kit.py --cpu --rubric "$rubric" --out "$out" --work "$work" \
    --budget "${KIT_BUDGET:-900}" --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$@"
fi

start=$(date +%s)
python="${KIT_PYTHON:-python3}"
commit=$(cat .gpu/COMMIT 2>/dev/null || echo unknown)
rubric="$work/rubric"
[ -f .gpu/rubric.xz ] || { echo "no .gpu/rubric.xz: run scripts/gpu/build.sh first" >&2; exit 2; }
xz -dc .gpu/rubric.xz > "$rubric" 2>/dev/null \
  || "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(".gpu/rubric.xz"), open(sys.argv[1], "wb"))' "$rubric"
chmod +x "$rubric"
# the CUDA libraries of the machine's Python packages (torch's), then the driver's
site=$("$python" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)
libs=$(find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
for d in /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do [ -d "$d" ] && libs="$libs$d:"; done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:-}"
{
  echo "commit $commit"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$rubric" | grep -E 'cuda|cublas|curand|nvrtc|not found'
  "$rubric" --version
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt" >&2
# the kit gets what is left of 8 minutes (KIT_BUDGET: fewer seconds)
budget=$((${KIT_BUDGET:-480} - 20 - ($(date +%s) - start)))
PYTHONUNBUFFERED=1 timeout $((budget + 15)) "$python" scripts/gpu/kit.py --rubric "$rubric" --out "$out" \
  --work "$work" --budget "$budget" --commit "$commit" "$@" 2>&1 | tee "$out/kit.log"
exit "${PIPESTATUS[0]}"
