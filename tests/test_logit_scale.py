"""A logit scale cannot hide robustness without a word (issue 37 item 0).

The same classifier with its logits divided by 10, 1000 or 1e6, or multiplied by 1e4, predicts the same
class everywhere. Cross-entropy on a near-uniform (or saturated) softmax gives APGD-CE almost nothing to
climb: before this, /1000 doubled the reported robust accuracy with no warning. Now the logit statistics
flag both ends of the scale and name the run's cross-entropy attacks, and AutoAttack (whose APGD-T, FAB and
Square do not see the scale) gives the plain model's numbers at every scale.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

import ctrobust
from ctrobust.models import load_model
from ctrobust.results.evidence import LogitStats, SanityReport, judge
from ctrobust.results.stats import wilson_interval

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_logit_scale")

SCALES = [0.1, 1e-3, 1e-6, 1e4]
POINTS = 20


class Scaled(nn.Module):
    """The shipped CNN with its logits multiplied by a constant after the last layer."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.net = load_model("smallcnn").model
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.factor


def _scale_warnings(result: ctrobust.RunResult) -> list[str]:
    assert result.sanity is not None
    return [w for w in result.sanity.warnings if "logits are so" in w]


@pytest.mark.parametrize("factor", SCALES, ids=[f"x{f:g}" for f in SCALES])
def test_a_scaled_model_is_flagged_with_its_cross_entropy_attacks_named(factor: float) -> None:
    result = ctrobust.run(Scaled(factor).eval(), dataset="fashion-mnist", n_examples=POINTS, n_select=POINTS,
                          betas=[0.9], no_base_candidate=True, attack="apgd-ce", steps=10, select_steps=5,
                          check_budget=0)
    warnings = _scale_warnings(result)
    assert len(warnings) == 2, result.sanity.warnings if result.sanity else None  # both arms
    end = "so small" if factor < 1 else "so large"
    assert all(end in w and "the selection attack (apgd-ce" in w and "the final attack (apgd-ce" in w
               and "--attack autoattack" in w for w in warnings), warnings


def test_the_plain_model_is_not_flagged() -> None:
    result = ctrobust.run(Scaled(1.0).eval(), dataset="fashion-mnist", n_examples=POINTS, n_select=POINTS,
                          betas=[0.9], no_base_candidate=True, attack="apgd-ce", steps=10, select_steps=5,
                          check_budget=0)
    assert _scale_warnings(result) == []
    assert result.sanity is not None and result.sanity.logits["base"].spread_median == pytest.approx(6, rel=0.5)


@pytest.fixture(scope="module")
def plain_autoattack(fmnist_test: tuple[torch.Tensor, torch.Tensor]) -> Any:
    x, y = fmnist_test[0][:POINTS], fmnist_test[1][:POINTS]
    return ctrobust.evaluate(Scaled(1.0).eval(), x, y, "linf", attack="autoattack", dataset="fashion-mnist")


@pytest.mark.slow
@pytest.mark.parametrize("factor", SCALES, ids=[f"x{f:g}" for f in SCALES])
def test_autoattack_gives_the_plain_models_numbers_at_every_scale(
        factor: float, fmnist_test: tuple[torch.Tensor, torch.Tensor], plain_autoattack: Any) -> None:
    x, y = fmnist_test[0][:POINTS], fmnist_test[1][:POINTS]
    plain = plain_autoattack
    scaled = ctrobust.evaluate(Scaled(factor).eval(), x, y, "linf", attack="autoattack", dataset="fashion-mnist")
    k = int(plain.robust_correct.sum())
    low, high = wilson_interval(k, POINTS)
    assert low <= float(scaled.robust_correct.double().mean()) <= high
    assert bool((scaled.clean_correct == plain.clean_correct).all())


def test_the_warning_names_only_the_attacks_that_see_the_scale() -> None:
    """Under AutoAttack only the selection attack (APGD-CE) is named; a scale-invariant run names none."""
    small = LogitStats(spread_median=0.006)
    report = SanityReport(logits={"base": small, "ct": LogitStats(spread_median=6.0)})
    judge(report, 0.0, "autoattack-standard", scale_sensitive=["the selection attack (apgd-ce-20steps)"])
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("the base model's logits are so small")
    assert "the selection attack (apgd-ce-20steps) uses cross-entropy" in report.warnings[0]
    report = SanityReport(logits={"ct": LogitStats(spread_median=6e4)})
    judge(report, 0.0, "autoattack-standard")
    assert report.warnings[0].startswith("CT's logits are so large") and "uses cross-entropy" not in report.warnings[0]
    older = SanityReport(logits={"ct": LogitStats()})  # stored before the spread was measured
    judge(older, 0.0, "autoattack-standard")
    assert older.warnings == []
