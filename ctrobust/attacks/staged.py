"""AutoAttack one attack at a time, so several arms advance together and each attack leaves a bound.

``run_standard_evaluation`` runs APGD-CE, APGD-T, FAB-T and Square on one model before it returns.
:class:`StagedAutoAttack` holds the same run open between attacks: each :meth:`StagedAutoAttack.run_stage`
is the library's loop for one attack (the same survivors in the same order and batches, each attack
re-seeded with the run's seed as the library does), so after the last stage its candidates and
verdicts are exactly those of one whole call (``tests/test_staged_autoattack.py`` checks it per point,
Linf and L2, original model and CT). Between stages, the points still robust give an upper bound on
robust accuracy; the state is plain tensors and a list of names, so a stage can be stored and a run
resumed from it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from pyautoattack import checks

from ctrobust.attacks.autoattack import AutoAttackRun, make_adversary
from ctrobust.attacks.flags import autoattack_flags
from ctrobust.threats import ThreatModel


@dataclass
class StageState:
    """AutoAttack's run between attacks: its flags per point, candidates, verdicts and what it has said."""

    robust: torch.Tensor  # bool per point: still robust (AutoAttack's robust_flags)
    x_adv: torch.Tensor
    y_adv: torch.Tensor
    done: list[str] = field(default_factory=list)  # attacks run (or skipped: no point left), in order
    breakdown: dict[str, float] = field(default_factory=dict)  # robust fraction after clean and each attack run
    flags: list[str] = field(default_factory=list)  # pyautoattack's warnings so far
    behaviour: dict[str, Any] | None = None  # the attacked model's behaviour on the points, kept by the caller

    def to_arrays(self) -> dict[str, Any]:
        meta = {"done": self.done, "breakdown": self.breakdown, "flags": self.flags, "behaviour": self.behaviour}
        return {"robust": self.robust.cpu().numpy(), "x_adv": self.x_adv.cpu().numpy(),
                "y_adv": self.y_adv.cpu().numpy(), "meta": np.array(json.dumps(meta))}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], device: torch.device) -> StageState:
        meta = json.loads(str(arrays["meta"]))
        return cls(torch.from_numpy(arrays["robust"]).to(device), torch.from_numpy(arrays["x_adv"]).to(device),
                   torch.from_numpy(arrays["y_adv"]).to(device), list(meta["done"]), dict(meta["breakdown"]),
                   list(meta["flags"]), meta.get("behaviour"))


class StagedAutoAttack:
    """One model's AutoAttack run, advanced one attack at a time (``state``: resume a stored run)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, threat: ThreatModel,
                 num_classes: int, seed: int, batch_size: int, version: str = "standard",
                 state: StageState | None = None) -> None:
        self.x, self.y, self.batch_size, self.num_classes, self.threat = x, y, batch_size, num_classes, threat
        self.adversary = make_adversary(model, eps, threat, num_classes, seed, x.device, version)
        self.attacks: list[str] = list(self.adversary.attacks_to_run)
        self.state = state if state is not None else self._start()

    def _start(self) -> StageState:
        """The library's checks of the model and its clean pass, as ``run_standard_evaluation`` does them."""
        aa, x, y, bs = self.adversary, self.x, self.y, self.batch_size
        with autoattack_flags() as flags, torch.no_grad():
            if aa.version != "rand":
                checks.check_randomized(aa.get_logits, x[:bs].to(aa.device), y[:bs].to(aa.device), bs=bs,
                                        logger=aa.logger)
            n_cls = checks.check_range_output(aa.get_logits, x[:bs].to(aa.device), logger=aa.logger)
            checks.check_dynamic(aa.model, x[:bs].to(aa.device), False, logger=aa.logger)
            checks.check_n_classes(n_cls, self.attacks, aa.apgd_targeted.n_target_classes,
                                   aa.fab.n_target_classes, logger=aa.logger)
            robust = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            y_adv = torch.empty_like(y)
            for start in range(0, len(x), bs):
                output = aa.get_logits(x[start : start + bs].clone().to(aa.device)).max(dim=1)[1]
                y_adv[start : start + bs] = output
                robust[start : start + bs] = y[start : start + bs].to(aa.device).eq(output).to(robust.device)
        state = StageState(robust, x.clone().detach(), y_adv, flags=list(flags))
        state.breakdown["clean"] = float(robust.sum()) / len(x)
        aa.logger.debug("initial accuracy: {:.2%}".format(state.breakdown["clean"]))  # the library's own lines (-v)
        return state

    @property
    def pending(self) -> list[str]:
        return [a for a in self.attacks if a not in self.state.done]

    @property
    def robust_count(self) -> int:
        return int(self.state.robust.sum())

    def run_stage(self, attack: str) -> None:
        """The library's loop for one attack: the points still robust, in order, ``batch_size`` at a time."""
        aa, state, bs = self.adversary, self.state, self.batch_size
        if attack in state.done:
            return
        robust_flags = state.robust
        aa.logger.debug(f"running {attack}")
        start_time = time.time()
        with autoattack_flags() as flags, torch.no_grad():
            num_robust = int(robust_flags.sum())
            if num_robust == 0:  # the library skips every remaining attack: nothing is recorded for it
                state.done.append(attack)
                return
            robust_idx = torch.nonzero(robust_flags, as_tuple=False)
            if num_robust > 1:
                robust_idx.squeeze_()
            for start in range(0, num_robust, bs):
                idx = robust_idx[start : min(start + bs, num_robust)]
                if len(idx.shape) > 1:
                    idx.squeeze_(-1)
                x = self.x[idx, :].clone().to(aa.device)
                y = self.y[idx].clone().to(aa.device)
                if len(x.shape) == 3:
                    x.unsqueeze_(dim=0)
                adv = _perturb(aa, attack, x, y)
                output = aa.get_logits(adv).max(dim=1)[1]
                fooled = ~y.eq(output).to(robust_flags.device)
                broken = idx[fooled]
                robust_flags[broken] = False
                state.x_adv[broken] = adv[fooled].detach().to(state.x_adv.device)
                state.y_adv[broken] = output[fooled].detach().to(state.x_adv.device)
        state.flags.extend(flags)
        state.breakdown[attack] = float(robust_flags.sum()) / len(self.x)
        state.done.append(attack)
        aa.logger.debug(f"robust accuracy after {attack.upper()}: {state.breakdown[attack]:.2%} "
                        f"(total time {time.time() - start_time:.1f} s)")

    def finish(self) -> AutoAttackRun:
        """The run's result once every attack ran, with the library's closing check on Square."""
        for attack in self.pending:
            self.run_stage(attack)
        with autoattack_flags() as flags:
            checks.check_square_sr(dict(self.state.breakdown), logger=self.adversary.logger)
        self.state.flags.extend(f for f in flags if f not in self.state.flags)
        breakdown = {name: self.state.breakdown.get(name, 0.0) for name in ["clean", *self.attacks]}
        return AutoAttackRun(self.state.x_adv, self.state.y_adv, breakdown, list(self.state.flags))


def _perturb(aa: Any, attack: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One batch of one attack, set up exactly as ``run_standard_evaluation`` sets it up."""
    if attack in ("apgd-ce", "apgd-dlr"):
        aa.apgd.loss = "ce" if attack == "apgd-ce" else "dlr"
        aa.apgd.seed = aa.get_seed()
        return aa.apgd.perturb(x, y)
    if attack in ("fab", "fab-t"):
        aa.fab.targeted = attack == "fab-t"
        if attack == "fab-t":
            aa.fab.n_restarts = 1
        aa.fab.seed = aa.get_seed()
        return aa.fab.perturb(x, y)
    if attack == "square":
        aa.square.seed = aa.get_seed()
        return aa.square.perturb(x, y)
    if attack == "apgd-t":
        aa.apgd_targeted.seed = aa.get_seed()
        return aa.apgd_targeted.perturb(x, y)
    raise ValueError(f"AutoAttack has no attack {attack!r}")
