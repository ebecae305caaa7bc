"""Attacks on models that take images in [0, 1]; every counted success is re-checked."""

from ctrobust.attacks.evaluation import ATTACKS, EvalResult, evaluate

__all__ = ["ATTACKS", "EvalResult", "evaluate"]
