"""Accuracy per (corruption, severity) cell and their mean, RobustBench's corruption score."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from ctrobust.corruptions.source import Cells
from ctrobust.errors import require_finite


@dataclass
class CorruptionResult:
    clean_correct: torch.Tensor
    cells: dict[tuple[str, int], torch.Tensor]  # bool per example, per cell
    seconds: float

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean())

    @property
    def cell_accuracy(self) -> dict[tuple[str, int], float]:
        return {key: float(c.float().mean()) for key, c in self.cells.items()}

    @property
    def robust_accuracy(self) -> float:
        """Mean accuracy over the cells (called robust accuracy so every threat reports one number)."""
        accs = list(self.cell_accuracy.values())
        return sum(accs) / len(accs)

    def summary(self) -> dict[str, object]:
        grid: dict[str, dict[str, float]] = {}
        for (c, s), acc in self.cell_accuracy.items():
            grid.setdefault(c, {})[str(s)] = acc
        return {
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "corruption_accuracy": self.robust_accuracy,
            "cells": grid,
            "n": int(self.clean_correct.numel()),
            "seconds": round(self.seconds, 3),
        }


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
) -> CorruptionResult:
    model.eval()
    start = time.perf_counter()
    clean = _correct(model, x_clean, y, batch_size, device)
    per_cell = {key: _correct(model, xc, yc, batch_size, device) for key, (xc, yc) in cells.items()}
    return CorruptionResult(clean, per_cell, time.perf_counter() - start)
