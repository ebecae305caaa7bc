"""Is the attacked model a function? A randomised model makes every attack's count wrong.

An attack decides which points to attack with one forward pass and counts them with another; on a
model whose output changes from pass to pass, points that no attack attempted end up counted as
robust. Such a model is refused unless it is evaluated with expectation over transformation
(AutoAttack's ``rand`` version).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ctrobust.errors import CtrobustError

PROBE_POINTS = 16
REPEATS = 3
RELATIVE_TOLERANCE = 1e-4  # AutoAttack's own check uses 1e-4 on L2-normalised outputs


def output_spread(model: nn.Module, x: torch.Tensor, repeats: int = REPEATS) -> float:
    """Largest change of the L2-normalised output between repeated passes on the same images."""
    model.eval()
    outs = []
    with torch.no_grad():
        for _ in range(repeats):
            out = model(x.clone()).double().flatten(1)  # a model may modify its input in place
            outs.append(out / out.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return max(float((o - outs[0]).norm(dim=1).max()) for o in outs[1:]) if len(outs) > 1 else 0.0


def is_randomised(model: nn.Module, x: torch.Tensor) -> bool:
    return output_spread(model, x[:PROBE_POINTS]) > RELATIVE_TOLERANCE


def randomised_model_error(where: str) -> CtrobustError:
    return CtrobustError(
        f"the model is randomised ({where} gives different outputs on two passes over the same images): its robust "
        "accuracy would count points no attack attempted. Evaluate it with expectation over transformation "
        "(--attack autoattack --aa-version rand), or make its forward deterministic in eval mode.")
