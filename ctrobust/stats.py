"""Uncertainty of the numbers we report: Wilson intervals and the exact McNemar test.

Why these two: accuracies on 1000 points carry a few points of sampling noise, and base and CT
are scored on the same examples, so a paired test on the examples they disagree on is the
right check of whether CT changed anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sane at 0% and 100%, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if correct == 0 else max(0.0, centre - half)  # exact ends: rounding must not exclude p itself
    high = 1.0 if correct == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class McNemar:
    """Paired comparison of two classifiers on the same examples."""

    only_base: int  # correct for base, wrong for CT
    only_ct: int  # correct for CT, wrong for base
    p_value: float  # exact two-sided binomial test on the discordant pairs


def mcnemar_exact(base_correct: Sequence[int], ct_correct: Sequence[int]) -> McNemar:
    if len(base_correct) != len(ct_correct):
        raise ValueError(f"paired test needs equal lengths, got {len(base_correct)} and {len(ct_correct)}")
    only_base = sum(1 for b, c in zip(base_correct, ct_correct) if b and not c)
    only_ct = sum(1 for b, c in zip(base_correct, ct_correct) if c and not b)
    return McNemar(only_base, only_ct, _binomial_two_sided(min(only_base, only_ct), only_base + only_ct))


def _binomial_two_sided(k: int, n: int) -> float:
    """P(X <= k) * 2 for X ~ Bin(n, 1/2), capped at 1; exact with integers."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def relative_improvement(base: float, ct: float) -> float | None:
    """The paper's relative improvement, (CT - base) / base in percent; None when base is 0."""
    return None if base == 0 else 100.0 * (ct - base) / base
