#!/usr/bin/env bash
# Run where pip reaches the package registry: puts into benchmarks/gpu_payload/ (git-ignored) what the GPU
# machine lacks, pure-Python wheels ctrobust imports and the Fashion-MNIST test set for target 2.
# Then pass `carry: ["benchmarks/gpu_payload"]` to the device run that calls benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/gpu_payload
mkdir -p "$OUT/wheels" "$OUT/fashion-mnist"
PIP="${PIP:-.venv/bin/pip}"
"$PIP" download -q --no-deps --only-binary=:all: -d "$OUT/wheels" pyautoattack==0.2.0 platformdirs
cp /usr/share/datasets/fashion-mnist/t10k-*.gz "$OUT/fashion-mnist/"
du -sh "$OUT"
