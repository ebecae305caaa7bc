"""Projected gradient descent (Madry et al.) under the norm balls of ``attacks/norms.py`` that have a
PGD step (Linf, L2; refused under L1, where APGD and AutoAttack run), random start, restarts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctrobust.attacks.norms import NORM_BALLS, check_pgd
from ctrobust.threats import ThreatModel


@dataclass
class PGDOutcome:
    """The candidates, and how many points only a mid-run iterate fooled.

    ``silent_successes``: points where some iterate was adversarial but no restart's last iterate was
    (Pintor et al.'s "silent success"); keeping only last iterates would have counted them robust.
    """

    x_adv: torch.Tensor
    silent_successes: int


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    threat: ThreatModel,
    steps: int = 20,
    step_size: float | None = None,
    restarts: int = 1,
    seed: int = 0,
) -> PGDOutcome:
    """Adversarial candidates for one batch: for each point, the first iterate (of any restart) that fools the model."""
    check_pgd(threat)
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    ball = NORM_BALLS[threat]
    gen = torch.Generator().manual_seed(seed)
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    last_fooled = torch.zeros_like(fooled)  # what keeping each restart's last iterate alone would have found
    for _ in range(restarts):
        x_adv = ball.random_start(x, eps, gen)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            with torch.no_grad():
                new = (logits.argmax(1) != y) & ~fooled
                best[new] = x_adv[new].detach()
                fooled |= new
            loss = F.cross_entropy(logits, y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = ball.project(x_adv + alpha * ball.ascent(grad), x, eps)
        with torch.no_grad():
            now_fooled = model(x_adv).argmax(1) != y
        new = now_fooled & ~fooled
        best[new] = x_adv[new].detach()
        fooled |= now_fooled
        last_fooled |= now_fooled
        if bool(fooled.all()):
            break
    return PGDOutcome(best, int((fooled & ~last_fooled).sum()))
