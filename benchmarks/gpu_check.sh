#!/usr/bin/env bash
# The paper's scale on one CUDA device, in one run of under 10 minutes (issue: "The beta sweep at hardware
# speed"): the CUDA tests of the CT unit and of the batched sweep; paper:resnet18 trained on Fashion-MNIST for
# as many epochs as fit in TRAIN_SECONDS (default 150); the full held-out protocol on it (AutoAttack standard,
# 1000 evaluation points, Linf and L2, sanity checks included); the batched-sweep benchmark on smallcnn and on
# that ResNet-18. Logs and results go to $OUT (default /tmp/gpu_check) for benchmarks/RESULTS.md.
#
# Needs python3 with a CUDA torch. What the GPU image lacks (pyautoattack, platformdirs, the Fashion-MNIST files)
# comes from benchmarks/gpu_payload/, made by benchmarks/prepare_gpu_check.sh where the venv is.
# GPU_CHECK_SMOKE=1 runs every step on the CPU at tiny sizes (a test of this script, not a measurement).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
PAYLOAD=benchmarks/gpu_payload
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
if ! "$PY" -c "import pyautoattack, platformdirs" 2>/dev/null; then
    if [ ! -d "$PAYLOAD/site/pyautoattack" ]; then
        echo "gpu_check: pyautoattack/platformdirs missing and no $PAYLOAD/site: run benchmarks/prepare_gpu_check.sh" >&2
        exit 1
    fi
    export PYTHONPATH="$PWD/$PAYLOAD/site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d "$PAYLOAD/fashion-mnist" ] && export CTROBUST_FASHION_MNIST_SYSTEM_DIR="$PWD/$PAYLOAD/fashion-mnist"
export PYTHONPATH="$PWD:$PWD/benchmarks:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export CTROBUST_STORE="$OUT/store.sqlite" CTROBUST_DATA_DIR="${TMPDIR:-/tmp}/ctrobust-data"
status=0
run() {  # run LIMIT NAME COMMAND...: the command's output to the terminal and to $OUT/NAME.log
    local limit=$(( $1 * LIMIT_SCALE )) name=$2; shift 2
    echo; echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "($name: exit $rc)"; status=1; }
}
CLI=("$PY" -m ctrobust.cli.main)
LIMIT_SCALE=1
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
    LIMIT_SCALE=6  # a ResNet-18 on two CPU cores: scoring the 10,000 test images alone takes minutes
    DEVICE=cpu TRAIN=(--n-train 256 --max-batches 2 --epochs 1) N_EVAL=10 N_SELECT=10 EVAL=(--attack apgd-ce --steps 2 --select-steps 2 --betas 0.8,0.9)
    N_SWEEP=20 SWEEP_BETAS=3 TESTS=(tests/test_batched_betas.py -k "not sweep_equals")
else
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1
    DEVICE=cuda TRAIN=(--epochs 15 --time-limit "${TRAIN_SECONDS:-150}") N_EVAL=1000 N_SELECT=500 EVAL=()
    N_SWEEP=500 SWEEP_BETAS=30 TESTS=(tests/test_fused_ctu.py tests/test_batched_betas.py -k "cuda")
fi
run 60 tests "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
run 200 train "${CLI[@]}" train --model paper:resnet18 --dataset fashion-mnist --device "$DEVICE" "${TRAIN[@]}" \
    --out "$OUT/resnet18_fmnist.pt" --no-progress
for threat in linf l2; do
    run 140 "eval_$threat" "${CLI[@]}" eval --model paper:resnet18 --dataset fashion-mnist \
        --checkpoint "$OUT/resnet18_fmnist.pt" --threat "$threat" --n-examples "$N_EVAL" --n-select "$N_SELECT" \
        --device "$DEVICE" "${EVAL[@]}" --out "$OUT/resnet18_$threat" --no-progress
done
run 60 sweep_smallcnn "$PY" benchmarks/sweep_batched.py --device "$DEVICE" --n "$N_SWEEP" --betas "$SWEEP_BETAS"
run 90 sweep_resnet18 "$PY" benchmarks/sweep_batched.py --device "$DEVICE" --n "$N_SWEEP" --betas "$SWEEP_BETAS" \
    --model paper:resnet18 --checkpoint "$OUT/resnet18_fmnist.pt"
exit $status
