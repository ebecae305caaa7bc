"""Uncertainty of the numbers we report: Wilson intervals and the exact McNemar test.

Why these two: accuracies on 1000 points carry a few points of sampling noise, and base and CT
are scored on the same examples, so a paired test on the examples they disagree on is the
right check of whether CT changed anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sane at 0% and 100%, unlike the normal one), from scipy."""
    if n <= 0:
        return (0.0, 1.0)
    level = 2 * stats.norm.cdf(z) - 1
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    low = 0.0 if correct == 0 else max(0.0, float(ci.low))  # exact ends: rounding must not exclude p itself
    high = 1.0 if correct == n else min(1.0, float(ci.high))
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
    """Exact two-sided binomial test of k successes in n at 1/2 (McNemar's exact test), from scipy."""
    if n == 0:
        return 1.0
    return float(stats.binomtest(int(k), int(n), 0.5, alternative="two-sided").pvalue)


def relative_improvement(base: float, ct: float) -> float | None:
    """The paper's relative improvement, (CT - base) / base in percent; None when base is 0."""
    return None if base == 0 else 100.0 * (ct - base) / base


@dataclass(frozen=True)
class PairedGain:
    """CT minus base on the same examples: the gain in points with its paired 95% interval and test."""

    n: int
    base_correct: int
    ct_correct: int
    only_base: int  # discordant: robust for base only
    only_ct: int  # discordant: robust for CT only
    low: float  # 95% interval of the gain, in points
    high: float
    p_value: float  # exact McNemar (two-sided binomial test on the discordant pairs)

    @property
    def gain_points(self) -> float:
        return 100.0 * (self.ct_correct - self.base_correct) / self.n if self.n else 0.0

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def describe(self) -> str:
        return (f"{self.gain_points:+.2f} points, 95% CI [{self.low:+.2f}, {self.high:+.2f}]; discordant "
                f"{self.only_ct} CT-only vs {self.only_base} base-only, McNemar p = {self.p_value:.3g}")

    def to_dict(self) -> dict[str, float | int | str]:
        return {"gain_points": self.gain_points, "ci_low_points": self.low, "ci_high_points": self.high,
                "only_base": self.only_base, "only_ct": self.only_ct, "mcnemar_p": self.p_value,
                "n": self.n, "base_correct": self.base_correct, "ct_correct": self.ct_correct,
                "method": PAIRED_CI_METHOD}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedGain:
        return cls(int(data["n"]), int(data["base_correct"]), int(data["ct_correct"]),
                   int(data["only_base"]), int(data["only_ct"]), float(data["ci_low_points"]),
                   float(data["ci_high_points"]), float(data["mcnemar_p"]))


PAIRED_CI_METHOD = "Newcombe hybrid score interval for paired proportions (1998, method 10), exact McNemar test"


def paired_gain(base_correct: Sequence[int], ct_correct: Sequence[int], z: float = Z95) -> PairedGain:
    """Gain of CT over base on the same examples, from their per-example outcomes (see paired_gain_counts)."""
    if len(base_correct) != len(ct_correct):
        raise ValueError(f"paired outcomes need equal lengths, got {len(base_correct)} and {len(ct_correct)}")
    both = sum(1 for b, c in zip(base_correct, ct_correct) if b and c)
    only_base = sum(1 for b, c in zip(base_correct, ct_correct) if b and not c)
    only_ct = sum(1 for b, c in zip(base_correct, ct_correct) if c and not b)
    return paired_gain_counts(both, only_base, only_ct, len(base_correct) - both - only_base - only_ct, z)


def pooled_gain(gains: Sequence[PairedGain]) -> PairedGain:
    """One gain over several runs' paired tables added together (e.g. the seeds of one setting)."""
    both = sum(g.base_correct - g.only_base for g in gains)
    only_base, only_ct = sum(g.only_base for g in gains), sum(g.only_ct for g in gains)
    return paired_gain_counts(both, only_base, only_ct, sum(g.n for g in gains) - both - only_base - only_ct)


def paired_gain_counts(both: int, only_base: int, only_ct: int, neither: int, z: float = Z95) -> PairedGain:
    """Gain of CT over base with Newcombe's interval for a difference of paired proportions.

    Why this interval: base and CT are scored on the same examples, so their accuracies are
    correlated; Newcombe's method combines the two Wilson intervals with the estimated correlation
    (continuity-corrected, as he recommends) and keeps good coverage near 0% and 100%, where
    robust accuracies of normally trained models sit.
    """
    n = both + only_base + only_ct + neither
    p_value = _binomial_two_sided(min(only_base, only_ct), only_base + only_ct)
    if n == 0:
        return PairedGain(0, 0, 0, 0, 0, -100.0, 100.0, 1.0)
    ct_k, base_k = both + only_ct, both + only_base
    p_ct, p_base = ct_k / n, base_k / n
    l_ct, u_ct = wilson_interval(ct_k, n, z)
    l_base, u_base = wilson_interval(base_k, n, z)
    margins = ct_k * (n - ct_k) * base_k * (n - base_k)
    phi = 0.0
    if margins > 0:
        a = both * neither - only_ct * only_base
        if a > n / 2:
            phi = (a - n / 2) / math.sqrt(margins)
        elif a < 0:
            phi = a / math.sqrt(margins)
    diff = p_ct - p_base
    low = diff - math.sqrt(max((p_ct - l_ct) ** 2 + (u_base - p_base) ** 2
                               - 2 * phi * (p_ct - l_ct) * (u_base - p_base), 0.0))
    high = diff + math.sqrt(max((p_base - l_base) ** 2 + (u_ct - p_ct) ** 2
                                - 2 * phi * (p_base - l_base) * (u_ct - p_ct), 0.0))
    return PairedGain(n, base_k, ct_k, only_base, only_ct, 100.0 * max(low, -1.0), 100.0 * min(high, 1.0), p_value)
