#!/usr/bin/env bash
# The GPU kit's CUDA build, made on a machine without a GPU: rubric with `--features cuda` for
# compute capability 9.0 (H100/H200; CUDA_COMPUTE_CAP=NN for another GPU), against a CUDA 13.0
# toolkit assembled from NVIDIA's PyPI wheels (13.0: the version of the GPU machines' driver;
# PTX from a newer nvcc does not load on an older driver). Writes, into .gpu/ (git-ignored, what
# `scripts/gpu/check.sh` reads on the GPU machine):
#   rubric.xz   the stripped binary, xz-compressed (it needs libcudart/libcublas/libcublasLt 13,
#               libcurand 10, libnvrtc 13 and the driver's libcuda.so.1 at run time: check.sh
#               finds them in the GPU machine's Python packages)
#   COMMIT      the commit it was built from (`-dirty` when the tree had changes)
# and prints its size and what travels to the GPU machine.
#
# Usage: bash scripts/gpu/build.sh            (cold: ~25 minutes on 2 cores; the toolkit, ~1.2 GB,
#        is downloaded once into ~/.cache/rubric/cuda-13.0)
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${RUBRIC_CACHE:-$HOME/.cache/rubric}"
cuda="$cache/cuda-13.0"
cap="${CUDA_COMPUTE_CAP:-90}"

# 1. the toolkit: nvcc, headers, and the libraries the link needs
wheels=(
  "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85" "nvidia-cuda-nvrtc==13.0.88"
  "nvidia-cublas==13.0.2.14" "nvidia-curand==10.4.0.35"
)
if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "assembling the CUDA 13.0 toolkit from PyPI wheels into $cuda" >&2
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    -d "$tmp/whl" "${wheels[@]}"
  for w in "$tmp"/whl/*.whl; do unzip -q -o "$w" -d "$tmp/x"; done
  rm -rf "$cuda"
  mv "$tmp/x/nvidia/cu13" "$cuda"
  rm -rf "$tmp"
  ln -sfn lib "$cuda/lib64"
  for l in cudart cublas cublasLt nvrtc; do ln -sfn "lib$l.so.13" "$cuda/lib/lib$l.so"; done
  ln -sfn libcurand.so.10 "$cuda/lib/libcurand.so"
fi

# 2. the driver library for linking only: a stub libcuda.so (soname libcuda.so.1) defining the
#    driver functions the crates' bindings name; the GPU machine's driver supplies the real one
stub="$cache/cuda-stub"
if [ ! -f "$stub/libcuda.so" ]; then
  cargo fetch -q
  mkdir -p "$stub"
  grep -rhoE '\bpub fn cu[A-Za-z0-9_]+\(' "$HOME"/.cargo/registry/src/*/cudarc-*/src/driver/sys/ \
    | sed -E 's/pub fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
    | awk '{print "void " $1 "(void) {}"}' > "$stub/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/stub.c"
  ln -sfn libcuda.so "$stub/libcuda.so.1"
fi

# 3. the build, in its own target folder (the CPU build's stays untouched)
export CUDA_HOME="$cuda" CUDA_PATH="$cuda" CUDA_ROOT="$cuda" CUDA_COMPUTE_CAP="$cap"
export PATH="$cuda/bin:$PATH"
export LIBRARY_PATH="$cuda/lib:$stub${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$cuda/lib:$stub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="${RUBRIC_CUDA_TARGET:-$cache/target-cuda}"
cargo build --release --features cuda --bin rubric

# 4. what travels
mkdir -p .gpu
strip -o .gpu/rubric "$CARGO_TARGET_DIR/release/rubric"
xz -T0 -6 -f .gpu/rubric
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit-dirty"
echo "$commit" > .gpu/COMMIT
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
kit=$(du -cb .gpu/* | tail -1 | cut -f1)
echo "built .gpu/rubric.xz: $(du -h .gpu/rubric.xz | cut -f1) (commit $commit, sm_$cap)" >&2
echo "travels: tracked files $((tree / 1048576)) MiB + .gpu $((kit / 1048576)) MiB = $(((tree + kit) / 1048576)) MiB of 64" >&2
