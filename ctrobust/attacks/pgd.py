"""Projected gradient descent (Madry et al.) under Linf or L2, random start, restarts."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ctrobust.threats import ThreatModel


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def _random_start(x: torch.Tensor, eps: float, threat: ThreatModel, gen: torch.Generator) -> torch.Tensor:
    noise = torch.rand(x.shape, generator=gen, device="cpu").to(x.device)
    if threat is ThreatModel.LINF:
        delta = (2 * noise - 1) * eps
    else:
        direction = torch.randn(x.shape, generator=gen, device="cpu").to(x.device)
        radius = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=gen, device="cpu").to(x.device)
        delta = direction / _flat_norm(direction) * radius * eps
    return (x + delta).clamp(0, 1)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, threat: ThreatModel) -> torch.Tensor:
    delta = x_adv - x
    if threat is ThreatModel.LINF:
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    return (x + delta).clamp(0, 1)


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
    gen = torch.Generator().manual_seed(seed)
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        x_adv = _random_start(x, eps, threat, gen)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                if threat is ThreatModel.LINF:
                    x_adv = x_adv + alpha * grad.sign()
                else:
                    x_adv = x_adv + alpha * grad / _flat_norm(grad)
                x_adv = _project(x_adv, x, eps, threat)
        with torch.no_grad():
            now_fooled = model(x_adv).argmax(1) != y
        new = now_fooled & ~fooled
        best[new] = x_adv[new].detach()
        fooled |= now_fooled
        if bool(fooled.all()):
            break
    return best
