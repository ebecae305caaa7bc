"""Target 1: CT overhead. Forward+backward of WRN-28-10 (RobustBench `Standard`, random weights) and of
smallcnn with ReLU, with the eager CT unit and with the fused one (beta 0.9), timed in turns; and the
memory kept for backward (bytes of saved tensors, by storage) for the whole model and for one unit.

    .venv/bin/python benchmarks/ct_overhead.py                 # CPU, batch 32
    .venv/bin/python benchmarks/ct_overhead.py --device cuda --batch 128
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from common import device_arg, interleaved, machine, median, print_table, setup_device, sync_for, wrn_28_10
from ctrobust.ct import curvature_tuned
from ctrobust.ct.fused import ctu_backend
from ctrobust.ct.unit import ctu
from ctrobust.models.smallcnn import SmallCNN


def saved_bytes(fn, *args) -> int:  # type: ignore[no-untyped-def]
    """Bytes of distinct storages autograd keeps for backward while ``fn`` runs."""
    storages: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[(str(t.device), storage.data_ptr())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    del out
    return sum(storages.values())


def param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def bench_model(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int,
                device: torch.device) -> list[list[object]]:
    model = model.to(device).eval()
    variants = {"relu": model, "ct-eager": curvature_tuned(model, 0.9, impl="eager"),
                "ct-fused": curvature_tuned(model, 0.9, impl="fused")}
    start = time.perf_counter()
    x_in = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(variants["ct-fused"](x_in), y).backward()  # compile before timing
    compile_s = time.perf_counter() - start

    def step(m: nn.Module):  # type: ignore[no-untyped-def]
        def run() -> None:
            xi = x.clone().requires_grad_(True)
            nn.functional.cross_entropy(m(xi), y).backward()
            model.zero_grad(set_to_none=True)
        return run

    samples = interleaved({k: step(m) for k, m in variants.items()}, repeats, sync_for(device))
    times = {k: median(v) for k, v in samples.items()}
    best = {k: min(v) for k, v in samples.items()}
    weights = param_bytes(model)
    mem = {k: saved_bytes(lambda xi, m=m: m(xi), x.clone().requires_grad_(True)) - weights for k, m in variants.items()}
    rows = []
    for k in variants:
        rows.append([name, k, f"{times[k]:.4f}", f"{times[k] / times['relu']:.3f}", f"{best[k] / best['relu']:.3f}",
                     f"{mem[k] / 2**20:.1f}", f"{mem[k] / mem['relu']:.2f}"])
    print(f"  ({name}: first fused call incl. compile {compile_s:.1f} s)")
    return rows


def unit_memory(device: torch.device) -> list[list[object]]:
    x = torch.randn(32, 160, 32, 32, device=device)
    relu = saved_bytes(torch.relu, x.clone().requires_grad_(True))
    rows = [["one unit 32x160x32x32", "relu", "", "", "", f"{relu / 2**20:.1f}", "1.00"]]
    fused_unit = curvature_tuned(nn.ReLU(), 0.9, impl="fused")
    for name, fn in (("ct-eager", lambda t: ctu(t, 0.9)), ("ct-fused", fused_unit)):
        b = saved_bytes(fn, x.clone().requires_grad_(True))
        rows.append(["one unit 32x160x32x32", name, "", "", "", f"{b / 2**20:.1f}", f"{b / relu:.2f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    device_arg(parser)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-wrn", action="store_true")
    args = parser.parse_args()
    device = setup_device(args)
    print(f"CT overhead, forward+backward, beta 0.9, batch {args.batch}, median of {args.repeats} interleaved runs")
    print(f"machine: {machine(device)}")
    torch.manual_seed(0)
    rows = []
    if not args.skip_wrn:
        x = torch.rand(args.batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (args.batch,), device=device)
        rows += bench_model("WRN-28-10", wrn_28_10(), x, y, args.repeats, device)
    x = torch.rand(max(args.batch, 256), 1, 32, 32, device=device)
    y = torch.randint(0, 10, (len(x),), device=device)
    rows += bench_model(f"smallcnn (batch {len(x)})", SmallCNN(), x, y, args.repeats, device)
    rows += unit_memory(device)
    print_table(rows, ["model", "variant", "median s", "median / relu", "best / relu", "saved MiB", "saved / relu"])
    print(f"fused unit backend: {ctu_backend('fused', device)}")
    print("saved MiB: activations autograd keeps for backward (parameters excluded).")


if __name__ == "__main__":
    main()
