#!/usr/bin/env bash
# Issue 6, target 5: targets 1-3 and APGD-CE throughput on one CUDA device, in under 8 minutes.
# Needs python3 with a CUDA torch. What the GPU image lacks (pyautoattack, platformdirs, the Fashion-MNIST test
# set) comes from benchmarks/gpu_payload/, made by benchmarks/prepare_gpu_check.sh where pip works.
# Output: the figures on stdout; copy them into benchmarks/RESULTS.md with the machine line each prints.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
PAYLOAD=benchmarks/gpu_payload
if ! "$PY" -c "import pyautoattack, platformdirs" 2>/dev/null; then
    if ! ls "$PAYLOAD"/wheels/*.whl >/dev/null 2>&1; then
        echo "gpu_check: pyautoattack/platformdirs missing and no $PAYLOAD/wheels: run benchmarks/prepare_gpu_check.sh" >&2
        exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/ctrobust-site "$PAYLOAD"/wheels/*.whl || exit 1
    export PYTHONPATH="/tmp/ctrobust-site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d "$PAYLOAD/fashion-mnist" ] && export CTROBUST_FASHION_MNIST_SYSTEM_DIR="$PWD/$PAYLOAD/fashion-mnist"
export PYTHONPATH="$PWD:$PWD/benchmarks:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export CTROBUST_STORE="${TMPDIR:-/tmp}/gpu_check_store.sqlite" CTROBUST_DATA_DIR="${TMPDIR:-/tmp}/ctrobust-data"
status=0
run() { local limit=$1; shift; echo; echo "== $*"; timeout "$limit" "$PY" "$@" || { echo "(exit $?)"; status=1; }; }
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then  # a CPU smoke test of this script with tiny sizes
    run 300 benchmarks/ct_overhead.py --device cpu --batch 2 --repeats 1
    run 300 benchmarks/attack_overhead.py --device cpu --model smallcnn --n 20 --repeats 1
    run 300 benchmarks/apgd_throughput.py --device cpu --n 2 --batch-size 2 --steps 2 --matmul-size 512
    run 600 benchmarks/sweep_cost.py --device cpu --n 10 --n-select 10 --betas 0.8,0.9,0.95 --reference-sample 1
    exit $status
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1
N_SWEEP="${N_SWEEP:-100}"
run 50 -m pytest -q -p no:cacheprovider tests/test_fused_ctu.py -k cuda  # the CUDA kernels equal the formula
run 80 benchmarks/ct_overhead.py --device cuda --batch 128 --repeats 10
run 80 benchmarks/attack_overhead.py --device cuda --model smallcnn --n 500 --repeats 2
run 60 benchmarks/apgd_throughput.py --device cuda --n 500 --batch-size 500 --steps 100
# The full reference (31 AutoAttack runs of >= 17 s each on an H200) does not fit 8 minutes: sampled, an estimate.
run 200 benchmarks/sweep_cost.py --device cuda --n "$N_SWEEP" --n-select "$((N_SWEEP / 2))" --reference-sample 4
exit $status
