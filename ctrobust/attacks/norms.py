"""The geometry of each norm ball, in one place: distance, projection, random start, ascent direction.

PGD and the re-check of adversarial examples read a ball from ``NORM_BALLS`` by threat model, so a new
norm is one entry here (and its ThreatModel and scorer), not a branch in each attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ctrobust.threats import ThreatModel


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each example, shaped to broadcast over it (never 0)."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class NormBall:
    distance: Callable[[torch.Tensor], torch.Tensor]  # per-example size of a perturbation
    clip: Callable[[torch.Tensor, float], torch.Tensor]  # a perturbation moved into the ball of radius eps
    ascent: Callable[[torch.Tensor], torch.Tensor]  # steepest-ascent step direction from a gradient
    spread: Callable[[torch.Tensor, torch.Tensor, float, torch.Generator], torch.Tensor]  # random start's delta

    def random_start(self, x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
        """A random point of the ball around ``x``, inside [0, 1]; the first draw is uniform noise either way."""
        noise = torch.rand(x.shape, generator=gen, device="cpu").to(x.device)
        return (x + self.spread(x, noise, eps, gen)).clamp(0, 1)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
        return (x + self.clip(x_adv - x, eps)).clamp(0, 1)


def _l2_spread(x: torch.Tensor, _noise: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    direction = torch.randn(x.shape, generator=gen, device="cpu").to(x.device)
    radius = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=gen, device="cpu").to(x.device)
    return direction / _flat_norm(direction) * radius * eps


NORM_BALLS: dict[ThreatModel, NormBall] = {
    ThreatModel.LINF: NormBall(
        distance=lambda d: d.flatten(1).abs().amax(dim=1),
        clip=lambda d, eps: d.clamp(-eps, eps),
        ascent=torch.sign,
        spread=lambda x, noise, eps, gen: (2 * noise - 1) * eps,
    ),
    ThreatModel.L2: NormBall(
        distance=lambda d: d.flatten(1).norm(dim=1),
        clip=lambda d, eps: d * (eps / _flat_norm(d)).clamp(max=1.0),
        ascent=lambda g: g / _flat_norm(g),
        spread=_l2_spread,
    ),
}
