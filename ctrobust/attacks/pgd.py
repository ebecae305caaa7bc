"""Projected gradient descent (Madry et al.) under Linf or L2, random start, restarts."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.threats import ThreatModel


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
) -> torch.Tensor:
    """Adversarial candidates for one batch: for each point, the first restart that fools the model."""
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    ball = NORM_BALLS[threat]
    gen = torch.Generator().manual_seed(seed)
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        x_adv = ball.random_start(x, eps, gen)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = ball.project(x_adv + alpha * ball.ascent(grad), x, eps)
        with torch.no_grad():
            now_fooled = model(x_adv).argmax(1) != y
        new = now_fooled & ~fooled
        best[new] = x_adv[new].detach()
        fooled |= now_fooled
        if bool(fooled.all()):
            break
    return best
