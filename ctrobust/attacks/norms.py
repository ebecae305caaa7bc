"""The norm balls: everything that differs from one norm-bounded threat model to another, in one entry.

A ball's entry holds its geometry (distance, projection onto the ball inside [0, 1], PGD's ascent
direction, PGD's random start), the random start APGD draws (which the batched sweep reproduces),
the points the binarization test samples, AutoAttack's own settings for the norm, and the box's
diameter. PGD, APGD, AutoAttack, the cost model, the re-check of adversarial examples and the checks
read a ball from ``NORM_BALLS``; a new norm is a ``ThreatModel`` value (``ctrobust/threats.py``) and an
entry here. ``tests/test_registries.py`` fails when a norm-bounded threat has no entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyautoattack.autopgd_base import L1_projection

from ctrobust.errors import CtrobustError
from ctrobust.threats import ThreatModel

Sampler = Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per example, shaped to broadcast over it (never 0)."""
    return values.clamp_min(1e-12).view(-1, *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class AutoAttackSettings:
    """What AutoAttack's standard version sets for a norm (pyautoattack's ``_set_version``); the cost model
    and ``make_adversary`` read them, so the estimate and the run agree."""

    apgd_restarts: int  # APGD-CE's restarts
    apgd_targets: int  # APGD-T's target classes (capped at the number of classes - 1)
    fab_targets: int  # FAB-T's target classes (capped likewise)
    large_reps: bool  # APGD's decreasing-eps schedule (L1)


@dataclass(frozen=True)
class NormBall:
    distance: Callable[[torch.Tensor], torch.Tensor]  # per-example size of a perturbation
    clip: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (delta, x, eps) -> a delta in ball and box
    ascent: Callable[[torch.Tensor], torch.Tensor]  # steepest-ascent step direction (unit size) from a gradient
    spread: Callable[[torch.Tensor, torch.Tensor, float, torch.Generator], torch.Tensor]  # PGD random start's delta
    # APGD's own random start, drawn outside it so the batched sweep can start each (point, beta) pair where the
    # one-beta run starts; None where APGD treats a given start differently from its own (L1: its sparsity).
    apgd_start: Callable[[torch.Tensor, float, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor] | None
    sphere: Sampler  # random perturbations of norm 1 (the binarization test's random baseline)
    inner: Sampler  # random perturbations of norm at most 1
    autoattack: AutoAttackSettings
    box_diameter: Callable[[int], float]  # the largest distance between two images of d pixels in [0, 1]
    boundary: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor] | None = None  # default: bisection
    # Whether plain PGD has a step here. Under L1 a sparse step along a fixed gradient keeps pushing coordinates
    # the box has already stopped (a linear model never escapes), so PGD is refused and APGD (which adapts its
    # sparsity) or AutoAttack is used; the ascent direction still serves the gradient-fidelity check.
    pgd_step: bool = True

    def random_start(self, x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
        """A random point of the ball around ``x``, inside [0, 1]; the first draw is uniform noise either way."""
        noise = torch.rand(x.shape, generator=gen, device="cpu").to(x.device)
        return self.project(x + self.spread(x, noise, eps, gen), x, eps)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
        """The point of the eps-ball around ``x`` inside [0, 1] for ``x_adv``."""
        return (x + self.clip(x_adv - x, x, eps)).clamp(0, 1)

    def boundary_point(self, x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
        """A point at exactly eps from ``x`` inside [0, 1]: the ball's own construction, or a random direction
        scaled by bisection until the clipped perturbation has norm eps."""
        if self.boundary is not None:
            return self.boundary(x, eps, gen)
        direction = self.sphere((1, *x.shape), gen)[0].to(x)
        low, high = eps, eps
        size = lambda scale: float(self.distance(((x + scale * direction).clamp(0, 1) - x).unsqueeze(0))[0])  # noqa: E731
        while size(high) < eps and high < 1e3 * eps:
            high *= 2
        for _ in range(60):
            mid = (low + high) / 2
            if size(mid) < eps:
                low = mid
            else:
                high = mid
        return (x + high * direction).clamp(0, 1)


def _l2_spread(x: torch.Tensor, _noise: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    direction = torch.randn(x.shape, generator=gen, device="cpu").to(x.device)
    radius = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=gen, device="cpu").to(x.device)
    return direction / _per_example(direction.flatten(1).norm(dim=1), x) * radius * eps


def _l1_spread(x: torch.Tensor, _noise: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """A Laplace direction (uniform on the L1 sphere) at a random radius; the projection then keeps it in the box."""
    direction = -torch.log(torch.rand(x.shape, generator=gen, device="cpu")) * torch.sign(
        torch.rand(x.shape, generator=gen, device="cpu") - 0.5)
    direction = direction.to(x.device)
    radius = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=gen, device="cpu").to(x.device)
    return direction / _per_example(direction.flatten(1).abs().sum(dim=1), x) * radius * eps


def _l1_ascent(grad: torch.Tensor) -> torch.Tensor:
    """Sparse steepest ascent under L1: the sign of the gradient on its largest 1% of coordinates (at least
    one), scaled to L1 norm 1 (steepest ascent under L1 moves one coordinate; a few move faster in practice)."""
    flat = grad.flatten(1)
    k = max(1, math.ceil(0.01 * flat.shape[1]))
    top = flat.abs().topk(k, dim=1).indices
    step = torch.zeros_like(flat).scatter(1, top, torch.gather(flat.sign(), 1, top)) / k
    return step.view_as(grad)


def _l1_clip(delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The exact projection onto the L1 ball intersected with the box (Croce and Hein's, as APGD uses it)."""
    return (delta + L1_projection(x, delta, eps)).to(delta.dtype)


def _unit_sphere(norm: Callable[[torch.Tensor], torch.Tensor]) -> Sampler:
    def sample(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        direction = torch.randn(shape, generator=gen)
        return direction / norm(direction.flatten(1)).view(-1, *([1] * (len(shape) - 1)))
    return sample


def _inside(sphere: Sampler) -> Sampler:
    def sample(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        return sphere(shape, gen) * torch.rand((shape[0],) + (1,) * (len(shape) - 1), generator=gen)
    return sample


def _linf_apgd_start(x: torch.Tensor, eps: float, normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    return x + eps * torch.ones_like(x) * normalize(2 * torch.rand(x.shape).to(x.device) - 1)


def _l2_apgd_start(x: torch.Tensor, eps: float, normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    return x + eps * torch.ones_like(x) * normalize(torch.randn(x.shape).to(x.device))


def _linf_corner(x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """A random corner of the cube, turned away from the walls of the box where it would leave it."""
    signs = torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1
    signs = torch.where(x + eps > 1, -torch.ones_like(signs), signs)
    signs = torch.where(x - eps < 0, torch.ones_like(signs), signs)
    return (x + signs * eps).clamp(0, 1)


_STANDARD = AutoAttackSettings(apgd_restarts=1, apgd_targets=9, fab_targets=9, large_reps=False)

NORM_BALLS: dict[ThreatModel, NormBall] = {
    ThreatModel.LINF: NormBall(
        distance=lambda d: d.flatten(1).abs().amax(dim=1),
        clip=lambda d, _x, eps: d.clamp(-eps, eps),
        ascent=torch.sign,
        spread=lambda x, noise, eps, gen: (2 * noise - 1) * eps,
        apgd_start=_linf_apgd_start,
        sphere=lambda shape, gen: (torch.randint(0, 2, shape, generator=gen) * 2 - 1).float(),
        inner=lambda shape, gen: torch.rand(shape, generator=gen) * 2 - 1,
        autoattack=_STANDARD,
        box_diameter=lambda d: 1.0,
        boundary=_linf_corner,
    ),
    ThreatModel.L2: NormBall(
        distance=lambda d: d.flatten(1).norm(dim=1),
        clip=lambda d, _x, eps: d * (eps / _per_example(d.flatten(1).norm(dim=1), d)).clamp(max=1.0),
        ascent=lambda g: g / _per_example(g.flatten(1).norm(dim=1), g),
        spread=_l2_spread,
        apgd_start=_l2_apgd_start,
        sphere=_unit_sphere(lambda f: f.norm(dim=1)),
        inner=_inside(_unit_sphere(lambda f: f.norm(dim=1))),
        autoattack=_STANDARD,
        box_diameter=lambda d: math.sqrt(d),
    ),
    ThreatModel.L1: NormBall(
        distance=lambda d: d.flatten(1).abs().sum(dim=1),
        clip=_l1_clip,
        ascent=_l1_ascent,
        spread=_l1_spread,
        apgd_start=None,
        sphere=_unit_sphere(lambda f: f.abs().sum(dim=1)),
        inner=_inside(_unit_sphere(lambda f: f.abs().sum(dim=1))),
        autoattack=AutoAttackSettings(apgd_restarts=5, apgd_targets=5, fab_targets=9, large_reps=True),
        box_diameter=lambda d: float(d),
        pgd_step=False,
    ),
}


def check_pgd(threat: ThreatModel) -> None:
    """Refuse plain PGD under a norm that has no PGD step (L1), with what to use instead."""
    if threat in NORM_BALLS and not NORM_BALLS[threat].pgd_step:
        raise CtrobustError(f"PGD has no step under {threat.value} in ctrobust (a sparse step along a fixed gradient "
                            "stalls on the box); use --attack apgd-ce or autoattack, and --select-attack apgd-ce.")
