"""The numbers of one evaluated cell (one model, beta, split and attack), as scored and as stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Scored:
    """Headline accuracies, the summary that goes into results, and per-example correctness (0/1 lists).

    ``adversarial``: the checked adversarial examples of an attack cell ({"indices", "images"} as numpy
    arrays, positions in the split), kept for the base model so CT can be attacked with them too.
    """

    clean_accuracy: float
    robust_accuracy: float
    summary: dict[str, object]
    per_example: dict[str, list[int]]
    adversarial: dict[str, Any] | None = None
