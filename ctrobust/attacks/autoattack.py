"""AutoAttack (Croce & Hein) and APGD-CE through pyautoattack, seeded and class-count safe."""

from __future__ import annotations

import torch
import torch.nn as nn
from pyautoattack import AutoAttack
from pyautoattack.autopgd_base import APGDAttack

from ctrobust.errors import CtrobustError
from ctrobust.threats import ThreatModel

AUTOATTACK_VERSIONS = ("standard", "plus", "rand")


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    threat: ThreatModel,
    num_classes: int,
    seed: int,
    batch_size: int,
    version: str = "standard",
) -> torch.Tensor:
    """Adversarial candidates from AutoAttack; APGD-T/FAB-T targets capped at num_classes - 1."""
    if num_classes < 4:
        raise CtrobustError(
            f"AutoAttack needs at least 4 classes (its targeted DLR loss compares four logits); the model has {num_classes}. "
            "Use --attack apgd-ce or --attack pgd."
        )
    device = x.device
    adversary = AutoAttack(model, eps=eps, norm=threat.value, seed=seed, version=version, device=device)
    n_targets = min(9, num_classes - 1)
    adversary.apgd_targeted.n_target_classes = n_targets
    adversary.fab.n_target_classes = n_targets
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    return x_adv


def apgd_ce(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    threat: ThreatModel,
    steps: int,
    seed: int,
    restarts: int = 1,
) -> torch.Tensor:
    """Adversarial candidates for one batch from APGD on the cross-entropy loss."""
    attack = APGDAttack(
        model, n_iter=steps, norm=threat.value, n_restarts=restarts, eps=eps, seed=seed, loss="ce", device=x.device
    )
    return attack.perturb(x, y)
