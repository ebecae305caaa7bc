#!/usr/bin/env bash
# The quickstart's main command at its defaults on a CUDA machine, for a committed result with every line a
# user sees (gain with its interval, sanity checks). The GPU image lacks pyautoattack and platformdirs and the
# Fashion-MNIST test set: benchmarks/prepare_gpu_check.sh puts them in benchmarks/gpu_payload/, carried along.
# Output: $OUT/quickstart/{result.json,result.csv,terminal.txt,stderr.txt} (OUT defaults to /tmp/gpu_quickstart).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-/tmp/gpu_quickstart}"
PAYLOAD=benchmarks/gpu_payload
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ctrobust-site "$PAYLOAD"/wheels/*.whl
export PYTHONPATH="/tmp/ctrobust-site:$PWD" PYTHONUNBUFFERED=1 CTROBUST_FASHION_MNIST_SYSTEM_DIR="$PWD/$PAYLOAD/fashion-mnist"
export CTROBUST_DATA_DIR=/tmp/ctrobust-data
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
mkdir -p "$OUT/quickstart"
start=$(date +%s)
timeout 540 python3 -m ctrobust.cli.main eval --model smallcnn --threat linf --device cuda --no-progress \
    --out "$OUT/quickstart" --store /tmp/quickstart.sqlite > "$OUT/quickstart/terminal.txt" 2> "$OUT/quickstart/stderr.txt"
echo "rc=$? wall=$(( $(date +%s) - start )) s"
cat "$OUT/quickstart/terminal.txt"
tail -5 "$OUT/quickstart/stderr.txt"
