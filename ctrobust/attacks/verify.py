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


def stored_adversarial_problem(adversarial: dict[str, object], x: torch.Tensor, eps: float,
                               threat: ThreatModel) -> str | None:
    """Why stored adversarial examples ({"indices", "images"}, positions in ``x``) cannot be used, or None:
    every index a distinct point of ``x``, every image finite, in [0, 1] and in the eps-ball of its point."""
    try:
        indices = torch.as_tensor(adversarial["indices"])
        images = torch.as_tensor(adversarial["images"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        return f"unreadable arrays ({type(exc).__name__})"
    if indices.dim() != 1 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        return "the indices are not a list of integers"
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(x)):
        return f"indices outside the {len(x)} evaluation points"
    if len(torch.unique(indices)) != len(indices):
        return "repeated indices"
    if tuple(images.shape) != (len(indices), *x.shape[1:]) or not images.dtype.is_floating_point:
        return f"images of shape {tuple(images.shape)} for {len(indices)} points of shape {tuple(x.shape[1:])}"
    if len(indices) == 0:
        return None
    images = images.to(x.dtype)
    if not bool(torch.isfinite(images).all()):
        return "images that are not finite"
    flat = images.flatten(1)
    if float(flat.min()) < -BOX_TOL or float(flat.max()) > 1 + BOX_TOL:
        return "images outside [0, 1]"
    distance = perturbation_norm(images - x[indices.long()].cpu(), threat)
    if bool((distance > eps * (1 + EPS_RTOL) + EPS_ATOL).any()):
        return f"images {float(distance.max()):.4g} from their points, outside the eps-ball of {eps:g}"
    return None
