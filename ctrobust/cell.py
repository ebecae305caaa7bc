"""The numbers of one evaluated cell (one model, beta, split and attack), as scored and as stored."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Scored:
    """Headline accuracies, the summary that goes into results, and per-example correctness (0/1 lists)."""

    clean_accuracy: float
    robust_accuracy: float
    summary: dict[str, object]
    per_example: dict[str, list[int]]
