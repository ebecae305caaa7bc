"""APGD-CE images/s on WRN-28-10 (random weights) against the bound from its FLOPs and the device's peak.

FLOPs per image and iteration are counted by torch's FlopCounterMode over one forward+backward as the
attack runs it (parameters keep requires_grad, as in AutoAttack, so weight gradients count). The peak is
measured: the best of a few large fp32 matrix products in the precision the attack's convolutions use
(on CUDA cuDNN convolutions default to TF32 while matrix products do not, so the product is timed with
cuDNN's TF32 setting; both peaks are printed). Bound = peak / (FLOPs per image-iteration x iterations).

    .venv/bin/python benchmarks/apgd_throughput.py --device cuda --n 1000 --steps 100
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from common import device_arg, machine, setup_device, sync_for, wrn_28_10
from ctrobust.attacks.autoattack import apgd_ce
from ctrobust.threats import ThreatModel


def matmul_peak(device: torch.device, size: int, tf32: bool = False) -> float:
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        return _best_matmul(device, size)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _best_matmul(device: torch.device, size: int) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    sync = sync_for(device)
    best = float("inf")
    for _ in range(4):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def flops_per_image_iteration(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    xi = x.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(xi), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    device_arg(parser)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100, help="APGD iterations (AutoAttack uses 100)")
    parser.add_argument("--matmul-size", type=int, default=8192)
    args = parser.parse_args()
    device = setup_device(args)
    model = wrn_28_10().to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 3, 32, 32, generator=g).to(device)
    # Labels = the model's own predictions: APGD attacks only correctly classified points, and with random
    # weights and random labels 90% would be skipped, inflating images/s tenfold.
    with torch.no_grad():
        y = torch.cat([model(x[i : i + args.batch_size]).argmax(1) for i in range(0, args.n, args.batch_size)])
    flops = flops_per_image_iteration(model, x[: min(8, args.n)], y[: min(8, args.n)])
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32  # what the convolutions run in
    fp32_peak = matmul_peak(device, args.matmul_size, tf32=False)
    peak = matmul_peak(device, args.matmul_size, tf32=True) if tf32 else fp32_peak
    sync = sync_for(device)
    apgd_ce(model, x[:2], y[:2], 8 / 255, ThreatModel.LINF, 2, seed=0)  # warm-up
    sync()
    start = time.perf_counter()
    for i in range(0, args.n, args.batch_size):
        apgd_ce(model, x[i : i + args.batch_size], y[i : i + args.batch_size], 8 / 255, ThreatModel.LINF, args.steps, seed=0)
    sync()
    seconds = time.perf_counter() - start
    rate = args.n / seconds
    bound = peak / (flops * args.steps)
    print(f"APGD-CE on WRN-28-10 (random weights), Linf 8/255, {args.steps} iterations, n={args.n}, batch "
          f"{args.batch_size}; machine: {machine(device)}")
    print(f"FLOPs per image per iteration (fwd+bwd): {flops / 1e9:.2f} GFLOP")
    print(f"measured matmul peak ({args.matmul_size}^3): fp32 {fp32_peak / 1e12:.2f} TFLOP/s"
          + (f", TF32 {peak / 1e12:.2f} TFLOP/s (the convolutions' precision: the bound uses it)" if tf32 else ""))
    print(f"APGD-CE: {seconds:.2f} s, {rate:.1f} images/s; FLOP bound {bound:.1f} images/s; "
          f"achieved {100 * rate / bound:.1f}% of the bound")


if __name__ == "__main__":
    main()
