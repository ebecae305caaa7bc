"""Do the model's input gradients describe its outputs? A finite-difference check per point.

CT's unit has hand-written backward passes (CUDA kernels, the compiled unit); a wrong sign or scale
there, a straight-through layer or a scrambled backward makes every gradient attack weak and the
model look robust. For a few points, the derivative of the margin along the attack's own ascent
direction (sign of the gradient for Linf, its unit vector for L2) is compared with a central finite
difference of the forward pass; the two must agree within a factor of 2.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.results.evidence import GradientFidelity
from ctrobust.threats import ThreatModel

N_POINTS = 16
STEP_FRACTION = 0.01  # finite-difference step, relative to eps
RATIO_RANGE = (0.5, 2.0)
FLAT = 1e-6  # a finite difference smaller than this (relative to the margin's scale) says nothing


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of the true class minus the largest other logit, per point."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.clone()
    others.scatter_(1, y.view(-1, 1), float("-inf"))
    return true - others.amax(1)


def gradient_fidelity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float,
                      device: torch.device, n_points: int = N_POINTS) -> GradientFidelity:
    """Autograd's directional derivative of the margin against a central finite difference, on ``n_points`` points."""
    model.eval()
    x, y = x[:n_points].to(device), y[:n_points].to(device)
    xs = x.clone().requires_grad_(True)
    margin = _margin(model(xs), y)
    (grad,) = torch.autograd.grad(margin.sum(), xs)
    direction = NORM_BALLS[threat].ascent(grad)
    # Step inside [0, 1]: where a pixel would leave the box, the direction is zeroed there.
    h = STEP_FRACTION * eps
    free = ((x + h * direction) <= 1) & ((x + h * direction) >= 0) & ((x - h * direction) <= 1) & ((x - h * direction) >= 0)
    direction = direction * free
    claimed = (grad * direction).flatten(1).sum(1).double()
    with torch.no_grad():
        plus = _margin(model(x + h * direction), y).double()
        minus = _margin(model(x - h * direction), y).double()
    measured = (plus - minus) / (2 * h)
    scale = margin.detach().abs().double().clamp_min(1.0)
    flat = ((measured.abs() * h) < FLAT * scale) & ((claimed.abs() * h) < FLAT * scale)
    ratio = claimed / torch.where(measured == 0, torch.full_like(measured, 1e-30), measured)
    ok = (ratio >= RATIO_RANGE[0]) & (ratio <= RATIO_RANGE[1])
    kept = ~flat
    n = int(kept.sum())
    return GradientFidelity(n=n, disagreeing=int((~ok & kept).sum()),
                            ratio_median=float(ratio[kept].median()) if n else None, flat=int(flat.sum()))
