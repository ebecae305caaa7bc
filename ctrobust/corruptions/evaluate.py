"""Accuracy per (corruption, severity) cell and their mean, RobustBench's corruption score."""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from ctrobust.cell import Counts, Scored
from ctrobust.corruptions.source import Cells
from ctrobust.errors import require_finite


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size].to(device))
            require_finite(logits, "on corrupted images")
            out.append(logits.argmax(1).cpu() == y[i : i + batch_size])
    return torch.cat(out)


def corruption_accuracy(
    model: nn.Module, x_clean: torch.Tensor, y: torch.Tensor, cells: Cells, batch_size: int, device: torch.device
) -> Scored:
    """The cell: correctness on the clean images and on each (corruption, severity) cell's; its robust
    accuracy is the mean over the cells (so every threat reports one number)."""
    model.eval()
    start = time.perf_counter()
    clean = _correct(model, x_clean, y, batch_size, device)
    per_cell = {key: _correct(model, xc, yc, batch_size, device) for key, (xc, yc) in cells.items()}
    per_example = {"clean": clean.int().tolist(), **{f"{c}/{s}": v.int().tolist() for (c, s), v in per_cell.items()}}
    counts = Counts.of(per_example)
    grid: dict[str, dict[str, float]] = {}
    for (c, s), v in per_cell.items():
        grid.setdefault(c, {})[str(s)] = float(v.float().mean())
    summary: dict[str, object] = {
        "clean_accuracy": counts.clean_accuracy, "robust_accuracy": counts.robust_accuracy,
        "corruption_accuracy": counts.robust_accuracy, "cells": grid, "n": counts.n,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return Scored(per_example, summary)
