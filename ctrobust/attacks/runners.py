"""The attacks' runners and their forms on a binarized model: the functions the registry's entries name.

A runner attacks (x, y) and returns its candidates with what it adds to the result; the caller
(:func:`ctrobust.attacks.evaluation.attack_and_check`) re-checks every candidate before it counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from pyautoattack.autopgd_base import APGDAttack

from ctrobust.attacks.autoattack import AutoAttackRun, apgd_ce, autoattack
from ctrobust.attacks.flags import AUTOATTACK_LOGGER, autoattack_flags
from ctrobust.attacks.pgd import pgd_attack
from ctrobust.attacks.spec import AttackSpec
from ctrobust.errors import CtrobustError
from ctrobust.threats import ThreatModel

AttackRunner = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, float, ThreatModel, AttackSpec, int, int],
    tuple[torch.Tensor, dict[str, object]],
]
AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]  # (model, x, y, eps) -> x_adv
AA_APGD_STEPS = 100  # AutoAttack's APGD: 100 iterations, one restart, rho 0.75


@dataclass(frozen=True)
class BinarizedAttack:
    """How an attack runs on the binarization test's two-class model: a function of (model, x, y, eps),
    its label in the verdict, its query budget (the random baseline gets as many) and a note."""

    attack: AttackFn
    label: str
    queries: int
    note: str | None = None


def count_classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1]).shape[1])


def run_autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean_correct: torch.Tensor, eps: float,
                   threat: ThreatModel, spec: AttackSpec, seed: int, batch_size: int
                   ) -> tuple[torch.Tensor, dict[str, object]]:
    """All points go to AutoAttack, which skips the misclassified ones itself: the flags are then
    exactly those of calling pyautoattack directly with the same seed (its random starts are drawn
    per batch, so a different subset would draw different starts). Which points it attacked comes
    back with the candidates, so a point it skipped is never counted robust."""
    run = autoattack(model, x, y, eps, threat, count_classes(model, x), seed, batch_size, spec.version)
    return run.x_adv, autoattack_extra(run, x, y)


def autoattack_extra(run: AutoAttackRun, x: torch.Tensor, y: torch.Tensor) -> dict[str, object]:
    """What an AutoAttack run adds to a result: its own breakdown (before the re-check), its warnings,
    which points it attacked and its own verdicts."""
    return {"robust_accuracy_after": run.breakdown, "autoattack_flags": run.flags, "attacked": run.attacked(x, y),
            "attack_says_robust": run.y_adv == y}


Step = Callable[[nn.Module, torch.Tensor, torch.Tensor, float, ThreatModel, AttackSpec, int, int],
                tuple[torch.Tensor, int]]


def gradient_runner(step: Step, reports_silent_successes: bool = False) -> AttackRunner:
    """A runner that attacks the correctly classified points only, batch by batch, with ``step``;
    ``step`` returns its candidates and how many mid-run successes it kept that a last-iterate attack
    loses (reported when ``reports_silent_successes``)."""

    def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean_correct: torch.Tensor, eps: float,
            threat: ThreatModel, spec: AttackSpec, seed: int, batch_size: int) -> tuple[torch.Tensor, dict[str, object]]:
        x_adv = x.clone()
        idx = torch.nonzero(clean_correct).flatten()
        silent = 0
        with autoattack_flags() as flags:
            for i in range(0, len(idx), batch_size):
                part = idx[i : i + batch_size]
                x_adv[part], kept = step(model, x[part], y[part], eps, threat, spec, seed, i)
                silent += kept
        extra: dict[str, object] = {"attacked": clean_correct.clone(), "autoattack_flags": list(flags)}
        if reports_silent_successes:
            extra["silent_successes"] = silent
        return x_adv, extra

    return run


def _pgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, threat: ThreatModel, spec: AttackSpec,
              seed: int, offset: int) -> tuple[torch.Tensor, int]:
    out = pgd_attack(model, x, y, eps, threat, spec.steps or 20, spec.step_size, spec.restarts, seed + offset)
    return out.x_adv, out.silent_successes


def _apgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, threat: ThreatModel, spec: AttackSpec,
               seed: int, offset: int) -> tuple[torch.Tensor, int]:
    return apgd_ce(model, x, y, eps, threat, spec.steps or 20, seed, spec.restarts), 0  # APGD keeps its best point


def apgd_dlr(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, threat: ThreatModel, steps: int, seed: int,
             restarts: int = 1) -> torch.Tensor:
    """Adversarial candidates for one batch from APGD on the DLR loss (AutoAttack's APGD-DLR)."""
    n_classes = count_classes(model, x)
    if n_classes < 3:
        raise CtrobustError(f"APGD-DLR needs at least 3 classes (its loss compares three logits); the model has "
                            f"{n_classes}. Use --attack apgd-ce.")
    attack = APGDAttack(model, n_iter=steps, norm=threat.value, n_restarts=restarts, eps=eps, seed=seed, loss="dlr",
                        device=x.device, logger=logging.getLogger(AUTOATTACK_LOGGER))
    return attack.perturb(x, y)


def _apgd_dlr_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, threat: ThreatModel,
                   spec: AttackSpec, seed: int, offset: int) -> tuple[torch.Tensor, int]:
    return apgd_dlr(model, x, y, eps, threat, spec.steps or AA_APGD_STEPS, seed, spec.restarts), 0


run_pgd = gradient_runner(_pgd_step, reports_silent_successes=True)
run_apgd_ce = gradient_runner(_apgd_step)
run_apgd_dlr = gradient_runner(_apgd_dlr_step)


def pgd_on_binarized(spec: AttackSpec, threat: ThreatModel, seed: int) -> BinarizedAttack:
    """PGD with the run's own settings."""
    return BinarizedAttack(lambda model, x, y, eps: pgd_attack(model, x, y, eps, threat, spec.steps or 20,
                                                               spec.step_size, spec.restarts, seed).x_adv,
                           spec.label(), (spec.steps or 20) * spec.restarts)


def apgd_ce_on_binarized(spec: AttackSpec, threat: ThreatModel, seed: int) -> BinarizedAttack:
    """APGD-CE with the run's own settings."""
    steps = spec.steps or 20
    return BinarizedAttack(lambda model, x, y, eps: apgd_ce(model, x, y, eps, threat, steps, seed, spec.restarts),
                           spec.label(), steps * spec.restarts)


def autoattack_on_binarized(spec: AttackSpec, threat: ThreatModel, seed: int) -> BinarizedAttack:
    """AutoAttack's APGD-CE with its own settings: APGD-T needs four classes (the binarized model has two), and
    FAB-T and Square are left out with it."""
    apgd = apgd_ce_on_binarized(AttackSpec("apgd-ce", steps=AA_APGD_STEPS), threat, seed)
    return BinarizedAttack(apgd.attack, "APGD-CE", apgd.queries,
                           "AutoAttack's APGD-CE with its own settings: APGD-T needs four classes, the binarized model "
                           "has two")
