"""Clean and robust accuracy of one model on one set of points under one attack."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ctrobust.attacks.determinism import is_randomised, randomised_model_error
from ctrobust.attacks.spec import ATTACKS, AttackSpec
from ctrobust.attacks.verify import verify_adversarial
from ctrobust.cell import CountedAccuracies, Counts, Scored
from ctrobust.errors import CtrobustError, require_finite
from ctrobust.threats import ThreatModel

if TYPE_CHECKING:

    pass

__all__ = ["ATTACKS", "AttackSpec", "EvalResult", "attack_and_check"]


@dataclass
class EvalResult(CountedAccuracies):
    """What an attack returns: per-example correctness (bool tensors, on CPU), the checked adversarial
    examples and the settings that produced it. Its numbers are ``counts`` (the one type for them);
    ``scored()`` turns it into the cell the store keeps."""

    clean_correct: torch.Tensor
    robust_correct: torch.Tensor
    threat: str
    eps: float
    attack: dict[str, object]
    seed: int
    seconds: float
    rejected: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    x_adv: torch.Tensor | None = None  # the checked adversarial examples (the clean image where none holds)

    @property
    def counts(self) -> Counts:
        return Counts(int(self.clean_correct.numel()), int(self.clean_correct.sum()), int(self.robust_correct.sum()))

    def scored(self, keep_adversarial: bool = False) -> Scored:
        """This result as a cell; ``keep_adversarial``: keep the successful adversarial examples (the base
        model's, to transfer to CT)."""
        adversarial = None
        if keep_adversarial and self.x_adv is not None:
            fooled = torch.nonzero(self.clean_correct & ~self.robust_correct).flatten()
            adversarial = {"indices": fooled.numpy(), "images": self.x_adv[fooled].float().numpy()}
        return Scored({"clean": self.clean_correct.int().tolist(), "robust": self.robust_correct.int().tolist()},
                      self.summary(), adversarial)

    def summary(self) -> dict[str, object]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "n": self.n,
            "rejected_adversarials": self.rejected,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size])
            require_finite(logits, "on clean images")
            preds.append(logits.argmax(1))
    return torch.cat(preds)


@dataclass
class Prepared:
    """A model and its points, checked and put on the device, with the clean verdicts: what every attack
    starts from. ``checked`` turns an attack's candidates into the counted result."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    threat: ThreatModel
    eps: float
    spec: AttackSpec
    seed: int
    batch_size: int
    randomised: bool
    clean_correct: torch.Tensor
    start: float

    def checked(self, x_adv: torch.Tensor, extra: dict[str, object], seconds: float | None = None) -> EvalResult:
        """The attack's candidates re-checked and counted; ``seconds`` (default: since preparation) is the cost."""
        if self.randomised:
            extra["randomised"] = True
        spent = time.perf_counter() - self.start if seconds is None else seconds
        return checked_result(self.model, self.x, self.y, self.clean_correct, x_adv, self.eps, self.threat,
                              self.spec, self.seed, spent, extra)


def prepare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float, spec: AttackSpec,
            seed: int = 0, batch_size: int = 500, device: str | torch.device | None = None) -> Prepared:
    """Everything an attack needs before it runs, from resolved values (a plan's): the image checks, the device,
    the clean pass. :func:`evaluate` is the public entry that resolves names and default eps first."""
    if x.dim() != 4 or len(x) != len(y):
        raise CtrobustError(f"Expected images N x C x H x W and N labels, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise CtrobustError("Expected images in [0, 1]: put the normalisation inside the model.")
    spec.entry.check_images(spec, threat, tuple(x.shape[1:]))
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    model.eval()
    x, y = x.to(device), y.to(device)
    start = time.perf_counter()
    randomised = is_randomised(model, x)
    if randomised and not spec.entry.handles_randomised(spec.version):
        raise randomised_model_error("the attacked model")
    clean_correct = _predict(model, x, batch_size) == y
    return Prepared(model, x, y, threat, eps, spec, seed, batch_size, randomised, clean_correct, start)


def attack_and_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps: float,
                     spec: AttackSpec, seed: int = 0, batch_size: int = 500,
                     device: str | torch.device | None = None) -> EvalResult:
    """:func:`ctrobust.evaluate` on resolved values (the plan's threat, eps and attack): what the pipeline calls."""
    p = prepare(model, x, y, threat, eps, spec, seed, batch_size, device)
    runner = p.spec.entry.load(p.spec.entry.runner)
    x_adv, extra = runner(p.model, p.x, p.y, p.clean_correct, p.eps, p.threat, p.spec, p.seed, p.batch_size)
    return p.checked(x_adv, extra)


def checked_result(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean_correct: torch.Tensor,
                   x_adv: torch.Tensor, eps: float, threat: ThreatModel, spec: AttackSpec, seed: int,
                   seconds: float, extra: dict[str, object]) -> EvalResult:
    """Re-check the attack's candidates on ``model`` and count only the successes that hold.

    A point is counted robust only if it is clean-correct, the attack attempted it (``extra['attacked']``,
    where the attack decides that with a clean pass of its own) and no checked adversarial example
    exists; on a randomised model, also only if the attack's own verdict says robust.
    """
    start = time.perf_counter()
    attacked = extra.pop("attacked", None)
    attack_says_robust = extra.pop("attack_says_robust", None)
    check = verify_adversarial(model, x, x_adv, y, eps, threat, claimed=clean_correct & (x_adv != x).flatten(1).any(1))
    robust_correct = clean_correct & ~check.fooled
    if isinstance(attacked, torch.Tensor):
        unattacked = robust_correct & ~attacked.to(robust_correct.device)
        extra["unattacked_points"] = int(unattacked.sum())  # counted as not robust
        robust_correct = robust_correct & ~unattacked
    if extra.get("randomised") and isinstance(attack_says_robust, torch.Tensor):
        robust_correct = robust_correct & attack_says_robust.to(robust_correct.device)
    x_adv = torch.where(check.fooled.view(-1, *([1] * (x.dim() - 1))), x_adv, x)
    return EvalResult(
        x_adv=x_adv.detach().cpu(),
        clean_correct=clean_correct.cpu(),
        robust_correct=robust_correct.cpu(),
        threat=threat.value,
        eps=eps,
        attack=spec.to_dict(),
        seed=seed,
        seconds=seconds + time.perf_counter() - start,
        rejected=check.rejected,
        extra=extra,
    )
