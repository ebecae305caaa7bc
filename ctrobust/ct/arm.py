"""The two arms of a run, named in one place: the original model (beta = 1, where the CT unit is ReLU) and
CT at the chosen beta. When beta = 1 wins the sweep, "CT" is the original model and the run has one arm.

Torch-free, so every layer (the stages, the results, the reports) can name an arm the same way.
"""

from __future__ import annotations

from typing import Literal

BASE_BETA = 1.0  # the CT unit at beta = 1 is ReLU: the original model

ArmStyle = Literal["table", "prose", "short", "ascii", "html"]


def is_base(beta: float) -> bool:
    """Whether this beta's arm is the original model."""
    return beta == BASE_BETA


def final_betas(beta: float) -> list[float]:
    """The betas of a run's arms: the base first, then CT unless the chosen beta is the base's."""
    return [BASE_BETA] if is_base(beta) else [BASE_BETA, beta]


def arm_label(beta: float, style: ArmStyle = "table") -> str:
    """An arm's name: ``table`` (base (ReLU) / CT β=0.90), ``prose`` (the original model / CT β=0.90),
    ``short`` (base / CT), ``ascii`` (base / CT beta=0.90) or ``html`` (base (ReLU) / CT &beta;=0.90)."""
    if is_base(beta):
        return {"table": "base (ReLU)", "prose": "the original model", "short": "base", "ascii": "base",
                "html": "base (ReLU)"}[style]
    return {"table": f"CT \u03b2={beta:.2f}", "prose": f"CT \u03b2={beta:.2f}", "short": "CT",
            "ascii": f"CT beta={beta:.2f}", "html": f"CT &beta;={beta:.2f}"}[style]
