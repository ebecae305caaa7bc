"""Helpers shared by the benchmarks: interleaved timing, the machine's description, the WRN-28-10."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None] = lambda: None,
                warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each call of each function, measured in turns (A B C A B C ...), so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
            sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def sync_for(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def wrn_28_10() -> nn.Module:
    """RobustBench's `Standard` architecture (WRN-28-10), random weights (seed 0)."""
    from wrn import WideResNet2810

    torch.manual_seed(0)
    return WideResNet2810()


def device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def setup_device(args: argparse.Namespace) -> torch.device:
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    widths = [max(len(str(v)) for v in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
