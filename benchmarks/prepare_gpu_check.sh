#!/usr/bin/env bash
# Run where the virtual environment is built: puts into benchmarks/gpu_payload/ (git-ignored) what the GPU
# machine lacks and nothing more: the pure-Python packages ctrobust imports that its image does not have
# (pyautoattack without its 42 MB of example weights, platformdirs) and the Fashion-MNIST files (train and
# test: benchmarks/gpu_check.sh trains a ResNet-18). About 31 MB, under the device's 64 MiB carry limit.
# Then pass `carry: ["benchmarks/gpu_payload"]` to the device run that calls benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/gpu_payload
PY="${PYTHON:-.venv/bin/python}"
DATA="${CTROBUST_FASHION_MNIST_SYSTEM_DIR:-/usr/share/datasets/fashion-mnist}"
rm -rf "$OUT"
mkdir -p "$OUT/site" "$OUT/fashion-mnist"
for package in pyautoattack platformdirs; do
    src="$("$PY" -c "import $package, os; print(os.path.dirname($package.__file__))")"
    cp -r "$src" "$OUT/site/"
done
rm -rf "$OUT/site/pyautoattack/examples"
find "$OUT/site" -name __pycache__ -prune -exec rm -rf {} +
cp "$DATA"/*-ubyte.gz "$OUT/fashion-mnist/"
du -sh "$OUT"
