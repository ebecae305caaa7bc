"""AutoAttack (Croce & Hein) and APGD-CE through pyautoattack, seeded and class-count safe."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from pyautoattack import AutoAttack, checks
from pyautoattack.autopgd_base import APGDAttack

from ctrobust.attacks.flags import AUTOATTACK_LOGGER, autoattack_flags
from ctrobust.errors import CtrobustError
from ctrobust.threats import ThreatModel

_capture_lock = threading.Lock()


@contextmanager
def _robust_accuracy_per_attack() -> Iterator[dict[str, float]]:
    """Catch AutoAttack's own 'robust accuracy after each attack' dict.

    pyautoattack computes it but only logs it; it hands the dict to ``checks.check_square_sr``
    at the end of a run, so that call is wrapped for the duration of one run.
    """
    captured: dict[str, float] = {}
    with _capture_lock:
        original = checks.check_square_sr

        def capture(acc_dict: dict[str, float], *args: object, **kwargs: object) -> object:
            captured.update(acc_dict)
            return original(acc_dict, *args, **kwargs)

        checks.check_square_sr = capture
        try:
            yield captured
        finally:
            checks.check_square_sr = original


@dataclass
class AutoAttackRun:
    """What one AutoAttack run returned: candidates, its own verdicts, its breakdown and its warnings."""

    x_adv: torch.Tensor
    y_adv: torch.Tensor  # AutoAttack's prediction per point: y where it found the point robust
    breakdown: dict[str, float]  # fraction of x still robust after each attack (clean first)
    flags: list[str]  # pyautoattack's warnings about the model, in the order raised

    def attacked(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The points AutoAttack attacked: those its own clean pass found correct.

        AutoAttack returns a point it found misclassified unchanged with its wrong prediction; any
        other point was attacked (and is either still predicted y, or perturbed).
        """
        unchanged = (self.x_adv == x).flatten(1).all(1)
        return ~(unchanged & (self.y_adv != y))


SQUARE_VERSIONS = ("standard", "plus")  # the versions whose attacks include Square ("rand" has none)


def square_init_problem(threat: ThreatModel, image_shape: tuple[int, ...]) -> str | None:
    """Why pyautoattack's Square cannot start under L2 or L1 on images of this shape (None: it can).

    Its first perturbation is tiled in windows of side ``h // 5`` from an offset taken from the height; a
    window of side 2 or more that overruns the image (12x12, 14x14, 18x18 ...) or a side below 5 crashes
    inside the library (checked against Square itself for sides 2 to 69 in tests/test_attack_shapes.py).
    """
    if threat not in (ThreatModel.L2, ThreatModel.L1) or len(image_shape) != 3:
        return None
    h, w = image_shape[1], image_shape[2]
    side = h // 5
    if side == 0:
        return f"its first windows need images at least 5 pixels high; these are {h}x{w}"
    offset = (h - 5 * side) // 2
    if side == 1 or (offset + side * (h // side) <= h and offset + side * (w // side) <= w):
        return None
    return f"its first windows ({side}x{side}, tiled from pixel {offset}) overrun {h}x{w} images"


def check_square_shape(spec: Any, threat: ThreatModel, image_shape: tuple[int, ...]) -> None:
    """Refuse, before any work, an AutoAttack whose Square would crash on these images, with what works."""
    problem = square_init_problem(threat, image_shape) if spec.version in SQUARE_VERSIONS else None
    if problem is not None:
        raise CtrobustError(
            f"AutoAttack cannot run under {threat.value} on these images: its Square attack would crash in "
            f"pyautoattack ({problem}). Use --attack apgd-ce or --attack apgd-dlr (and the same --select-attack), "
            "--threat linf, or images of another size (28x28 and 32x32 work).")


def make_adversary(model: nn.Module, eps: float, threat: ThreatModel, num_classes: int, seed: int,
                   device: torch.device, version: str = "standard") -> AutoAttack:
    """pyautoattack's AutoAttack with its own settings for ``version`` and the norm (``NORM_BALLS[threat].autoattack``
    records the standard ones for the cost model); APGD-T/FAB-T targets capped at num_classes - 1."""
    if num_classes < 4:
        raise CtrobustError(
            f"AutoAttack needs at least 4 classes (its targeted DLR loss compares four logits); the model has "
            f"{num_classes}. "
            "Use --attack apgd-ce or --attack pgd."
        )
    adversary = AutoAttack(model, eps=eps, norm=threat.value, seed=seed, version=version, device=device)
    # AutoAttack's own settings for the norm and version (L1: 5 targets, 5 restarts, large reps), capped
    # at the classes there are to target.
    adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes, num_classes - 1)
    adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, num_classes - 1)
    return adversary


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
) -> AutoAttackRun:
    """AutoAttack on (x, y) in one ``run_standard_evaluation`` call: its candidates, verdicts, per-attack
    breakdown and warnings. Attacks skipped because no point was left get the last fraction (0)."""
    adversary = make_adversary(model, eps, threat, num_classes, seed, x.device, version)
    with _robust_accuracy_per_attack() as captured, autoattack_flags() as flags:
        x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    breakdown = {name: captured.get(name, 0.0) for name in ["clean", *adversary.attacks_to_run]}
    return AutoAttackRun(x_adv, y_adv, breakdown, list(flags))


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
        model, n_iter=steps, norm=threat.value, n_restarts=restarts, eps=eps, seed=seed, loss="ce", device=x.device,
        logger=logging.getLogger(AUTOATTACK_LOGGER),  # its zero-gradient warning goes where autoattack_flags reads
    )
    return attack.perturb(x, y)
