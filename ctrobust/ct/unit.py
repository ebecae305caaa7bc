"""The CT unit (CTU) of Hu, Gamba & Balestriero (arXiv 2502.07783).

phi(x) = c * sigmoid(beta * x / (1 - beta)) * x + (1 - c) * softplus(x / (1 - beta)) * (1 - beta)

As in the reference code, ``1 - beta`` is taken as ``1 - beta + 1e-6`` so that the formula is
defined everywhere, and softplus switches to the identity above 20. ``beta == 1`` returns
``relu(x)`` exactly, so CT at beta 1 is the original piecewise-affine network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctrobust.ct.beta_range import check_beta

EPS_REFERENCE = 1e-6
SOFTPLUS_THRESHOLD = 20.0


def ctu(x: torch.Tensor, beta: float, c: float = 0.5) -> torch.Tensor:
    """Apply the CT unit elementwise; beta = 1 is exactly ReLU."""
    beta = check_beta(beta)
    c = check_beta(c, "c")
    if beta == 1.0:
        return torch.relu(x)
    scale = 1.0 - beta + EPS_REFERENCE
    silu_part = torch.sigmoid(x * (beta / scale)) * x
    softplus_part = F.softplus(x / scale, threshold=SOFTPLUS_THRESHOLD) * scale
    return c * silu_part + (1.0 - c) * softplus_part
