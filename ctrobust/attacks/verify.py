"""Re-check every claimed adversarial example: in the eps-ball, in [0, 1], misclassified again."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.errors import require_finite
from ctrobust.threats import ThreatModel

# Float tolerance on the ball and the box: attacks project in float32.
EPS_RTOL = 1e-5
EPS_ATOL = 1e-6
BOX_TOL = 1e-6


@dataclass
class Verification:
    fooled: torch.Tensor  # bool per example: a checked adversarial example exists
    rejected: int  # claimed successes that failed a check


def perturbation_norm(delta: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    return NORM_BALLS[threat].distance(delta)


def verify_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    threat: ThreatModel,
    claimed: torch.Tensor,
) -> Verification:
    """Which of the ``claimed`` successes hold when checked on their own, without trusting the attack."""
    in_ball = perturbation_norm(x_adv - x, threat) <= eps * (1 + EPS_RTOL) + EPS_ATOL
    flat = x_adv.flatten(1)
    in_box = (flat.amin(dim=1) >= -BOX_TOL) & (flat.amax(dim=1) <= 1 + BOX_TOL)
    with torch.no_grad():
        logits = model(x_adv)
    require_finite(logits, "on the adversarial examples")
    wrong = logits.argmax(1) != y
    fooled = claimed & in_ball & in_box & wrong
    return Verification(fooled=fooled, rejected=int((claimed & ~fooled).sum()))
