"""How a model is scored under a threat: attacks for the norm balls, corrupted cells for corruptions.

Both scorers prepare their data once and are then called per beta, so a beta sweep reuses the
corrupted images and the split tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn as nn

from ctrobust.attacks import batched
from ctrobust.attacks.evaluation import attack_and_check
from ctrobust.attacks.spec import AttackSpec
from ctrobust.cell import Scored
from ctrobust.corruptions.evaluate import corruption_accuracy
from ctrobust.corruptions.source import Cells, corrupted_cells
from ctrobust.ct import CurvatureTuned
from ctrobust.ct.arm import is_base
from ctrobust.data.paths import resolve_data_dir
from ctrobust.data.splits import Splits
from ctrobust.identity import indices_digest
from ctrobust.models.fingerprint import SplitBehaviour, tensor_digest
from ctrobust.plan.run_plan import RunPlan
from ctrobust.results.provenance import package_version
from ctrobust.results.store import Store
from ctrobust.stages.finals import FinalArm, OnProvisional, staged_autoattack
from ctrobust.stages.progress import RunProgress
from ctrobust.threats import ThreatModel


class Scorer(Protocol):
    threat: ThreatModel
    select_label: str
    final_label: str
    settings: dict[str, Any]
    cells_per_image: int  # passes per image and beta (corruptions); 1 for attacks
    wrap: Callable[[nn.Module], nn.Module]  # how the attacked model is run (micro-batches, see attacks/execution.py)

    def attack_spec(self, stage: str) -> AttackSpec | None:
        """The attack of a stage (select or final); None where no attack runs (corruptions)."""
        ...

    def points(self, stage: str, n_points: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean images and labels a stage's cell scores (the first ``n_points`` of the selection split)."""
        ...

    def cell_identity(self, stage: str, n_points: int | None = None) -> dict[str, Any]:
        """What determines a cell's numbers besides model, beta and seed (stage: select or final;
        ``n_points``: the first n points of the selection split only)."""
        ...

    def select_many(self, ct: CurvatureTuned, betas: list[float], n_points: int | None = None) -> dict[float, Scored]:
        """Several betas of the sweep at once (in one batched pass where the attack allows it), on the
        first ``n_points`` of the selection split (default: all of it)."""
        ...

    def betas_per_pass(self, ct: CurvatureTuned, wanted: int | None) -> int:
        """How many betas one pass of the sweep holds: ``wanted``, or (None) what the device holds."""
        ...

    def final(self, ct: CurvatureTuned, beta: float) -> Scored: ...

    def final_many(self, models: dict[float, nn.Module], finals: FinalsContext) -> dict[float, Scored]:
        """The final attack on each beta's model (1.0: the original); AutoAttack stage by stage across them."""
        ...


@dataclass
class FinalsContext:
    """What the staged final attack needs from the run besides the models: where stages are kept, the bar,
    the provisional-table callback, and per beta the cell identity and the bar's cost factor."""

    store: Store | None
    progress: RunProgress
    on_provisional: OnProvisional | None
    identities: dict[float, dict[str, Any]]
    cost: dict[float, float]
    expected_survivors: dict[float, int]
    behaviours: dict[float, SplitBehaviour] = field(default_factory=dict)  # each arm's, on the evaluation split


class SplitPoints:
    """The selection and evaluation splits' clean images and labels, as every scorer holds them."""

    x_sel: torch.Tensor
    y_sel: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor

    def points(self, stage: str, n_points: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if stage == "select":
            return self.x_sel[:n_points], self.y_sel[:n_points]
        return self.x_eval, self.y_eval


class NormScorer(SplitPoints):
    """A norm ball (Linf, L2, L1): the selection attack on the selection split, the final attack on the eval split."""

    def __init__(self, plan: RunPlan, x: torch.Tensor, y: torch.Tensor, splits: Splits, device: torch.device,
                 on_step: Callable[[str], None]) -> None:
        assert plan.eps is not None and plan.select_attack is not None and plan.final_attack is not None
        self.plan, self.threat, self.eps, self.device = plan, plan.threat, plan.eps, device
        threat, eps = plan.threat, plan.eps
        self.select_spec: AttackSpec = plan.select_attack
        self.final_spec: AttackSpec = plan.final_attack
        self.select_label, self.final_label = self.select_spec.label(), self.final_spec.label()
        self.x_sel, self.y_sel = x[splits.select_indices], y[splits.select_indices]
        self.x_eval, self.y_eval = x[splits.eval_indices], y[splits.eval_indices]
        self._pairs_per_pass: int | None = None
        self.wrap: Callable[[nn.Module], nn.Module] = lambda model: model
        self.settings = {"attack_config": self.final_spec.to_dict(),
                         "select_attack_config": self.select_spec.to_dict()}
        library = f"pyautoattack {package_version('pyautoattack')}"
        self._indices = {"select": splits.select_indices, "final": splits.eval_indices}
        self._digests: dict[tuple[str, int], str] = {}
        self._common = {
            stage: {"threat": threat.value, "eps": eps, "attack": spec.to_dict(), "library_version": library,
                    "batch_size": plan.batch_size}
            for stage, spec in (("select", self.select_spec), ("final", self.final_spec))
        }

    cells_per_image = 1

    def cell_identity(self, stage: str, n_points: int | None = None) -> dict[str, Any]:
        x, y = (self.x_sel, self.y_sel) if stage == "select" else (self.x_eval, self.y_eval)
        return {**self._common[stage], **_split_identity(stage, self._indices[stage][:n_points],
                                                         self._digests, x[:n_points], y[:n_points])}

    def attack_spec(self, stage: str) -> AttackSpec | None:
        return self.select_spec if stage == "select" else self.final_spec

    def _run(self, ct: CurvatureTuned, beta: float, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec,
             keep_adversarial: bool = False) -> Scored:
        ct.beta = beta
        res = attack_and_check(self.wrap(ct), x, y, self.threat, self.eps, spec, self.plan.seed, self.plan.batch_size,
                               self.device)
        return res.scored(keep_adversarial)

    def select_many(self, ct: CurvatureTuned, betas: list[float], n_points: int | None = None) -> dict[float, Scored]:
        x, y = self.x_sel[:n_points], self.y_sel[:n_points]
        if len(betas) == 1 or not batched.supports(self.select_spec, self.threat):
            return {beta: self._run(ct, beta, x, y, self.select_spec) for beta in betas}
        results = batched.evaluate_betas(ct, betas, x, y, self.threat, self.eps, self.select_spec,
                                         self.plan.seed, self.plan.batch_size, self.device,
                                         self._pairs_per_pass)
        return {beta: res.scored() for beta, res in results.items()}

    def betas_per_pass(self, ct: CurvatureTuned, wanted: int | None) -> int:
        if not batched.supports(self.select_spec, self.threat):
            return 1
        if wanted is not None:
            self._pairs_per_pass = wanted * len(self.x_sel)
            return wanted
        if self.device.type != "cuda":  # compute-bound: batching gains nothing (benchmarks/RESULTS.md)
            return 1
        self._pairs_per_pass = batched.pairs_per_pass(ct, self.x_sel, self.y_sel, self.device)
        return max(1, self._pairs_per_pass // max(len(self.x_sel), 1))

    def final(self, ct: CurvatureTuned, beta: float) -> Scored:
        return self._run(ct, beta, self.x_eval, self.y_eval, self.final_spec, keep_adversarial=is_base(beta))

    def final_many(self, models: dict[float, nn.Module], finals: FinalsContext) -> dict[float, Scored]:
        if not self.final_spec.entry.staged:
            return {beta: attack_and_check(model, self.x_eval, self.y_eval, self.threat, self.eps, self.final_spec,
                                           self.plan.seed, self.plan.batch_size, self.device).scored(is_base(beta))
                    for beta, model in models.items()}
        arms = [FinalArm(beta, model, finals.identities.get(beta), finals.cost.get(beta, 1.0),
                         finals.expected_survivors.get(beta), finals.behaviours.get(beta))
                for beta, model in sorted(models.items(), reverse=True)]
        results = staged_autoattack(arms, self.x_eval, self.y_eval, self.threat, self.eps, self.final_spec,
                                    self.plan.seed, self.plan.batch_size, self.device, finals.store,
                                    finals.progress, finals.on_provisional)
        return {beta: res.scored(keep_adversarial=is_base(beta)) for beta, res in results.items()}


class CorruptionScorer(SplitPoints):
    """Corruptions: mean accuracy over the cells, on the selection split's and eval split's images."""

    def __init__(self, plan: RunPlan, x: torch.Tensor, y: torch.Tensor, splits: Splits, device: torch.device,
                 on_step: Callable[[str], None]) -> None:
        self.plan, self.device = plan, device
        self.wrap: Callable[[nn.Module], nn.Module] = lambda model: model
        corruptions, severities = list(plan.corruptions), list(plan.severities)
        dataset = plan.dataset
        data_dir = resolve_data_dir(plan.data_dir)
        self.x_sel, self.y_sel = x[splits.select_indices], y[splits.select_indices]
        self.x_eval, self.y_eval = x[splits.eval_indices], y[splits.eval_indices]
        all_idx = sorted(set(splits.select_indices) | set(splits.eval_indices))
        cells, info = corrupted_cells(dataset, data_dir, x, y, all_idx, corruptions, severities, plan.seed, on_step)
        pos = {i: k for k, i in enumerate(all_idx)}
        self.sel_cells = _subset(cells, [pos[i] for i in splits.select_indices])
        self.eval_cells = _subset(cells, [pos[i] for i in splits.eval_indices])
        self.threat = plan.threat
        self.select_label = self.final_label = "corruptions"
        self.cells_per_image = len(cells) + 1
        self.settings = {"corruptions": corruptions, "severities": severities, "corruption_data": info}
        library = "official files" if info["source"] == "official" else (
            f"imagecorruptions-imaug {package_version('imagecorruptions-imaug')}")
        common = {"threat": "corruptions", "eps": None, "attack": {"corruptions": corruptions,
                  "severities": severities}, "library_version": library}
        self._common = common
        self._indices = {"select": splits.select_indices, "final": splits.eval_indices}
        self._digests: dict[tuple[str, int], str] = {}

    def cell_identity(self, stage: str, n_points: int | None = None) -> dict[str, Any]:
        """The corrupted images count as data too (official files can change under the same indices)."""
        x, y, cells = (self.x_sel, self.y_sel, self.sel_cells) if stage == "select" else (
            self.x_eval, self.y_eval, self.eval_cells)
        tensors = [t[:n_points] for key in sorted(cells) for t in cells[key]]
        return {**self._common, **_split_identity(stage, self._indices[stage][:n_points], self._digests,
                                                  x[:n_points], y[:n_points], *tensors)}

    def attack_spec(self, stage: str) -> AttackSpec | None:
        return None

    def _run(self, ct: CurvatureTuned, beta: float, x: torch.Tensor, y: torch.Tensor, cells: Cells) -> Scored:
        ct.beta = beta
        return self._score(ct, x, y, cells)

    def _score(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, cells: Cells) -> Scored:
        return corruption_accuracy(model, x, y, cells, self.plan.batch_size, self.device)

    def select_many(self, ct: CurvatureTuned, betas: list[float], n_points: int | None = None) -> dict[float, Scored]:
        if n_points is None or n_points >= len(self.x_sel):
            return {beta: self._run(ct, beta, self.x_sel, self.y_sel, self.sel_cells) for beta in betas}
        cells = _subset(self.sel_cells, list(range(n_points)))
        return {beta: self._run(ct, beta, self.x_sel[:n_points], self.y_sel[:n_points], cells) for beta in betas}

    def betas_per_pass(self, ct: CurvatureTuned, wanted: int | None) -> int:
        return 1

    def final(self, ct: CurvatureTuned, beta: float) -> Scored:
        return self._run(ct, beta, self.x_eval, self.y_eval, self.eval_cells)

    def final_many(self, models: dict[float, nn.Module], finals: FinalsContext) -> dict[float, Scored]:
        return {beta: self._score(model, self.x_eval, self.y_eval, self.eval_cells) for beta, model in models.items()}


def _split_identity(stage: str, indices: list[int], digests: dict[tuple[str, int], str],
                    *tensors: torch.Tensor) -> dict[str, Any]:
    """Which points a cell scored: the split's name, size, a digest of its indices and one of the images and
    labels themselves (``digests``: the scorer's cache of the latter, by stage and size)."""
    key = (stage, len(indices))
    if key not in digests:
        digests[key] = tensor_digest(*tensors)
    return {"split": "select" if stage == "select" else "eval", "n": len(indices), "indices": indices_digest(indices),
            "data": digests[key]}


def _subset(cells: Cells, positions: list[int]) -> Cells:
    index = torch.tensor(positions, dtype=torch.long)
    return {key: (x[index], y[index]) for key, (x, y) in cells.items()}


def scorer_for(threat: ThreatModel) -> Callable[[RunPlan, torch.Tensor, torch.Tensor, Splits, torch.device,
                                                 Callable[[str], None]], Scorer]:
    """Attacks for every norm ball (its geometry is ``attacks/norms.py``'s entry), corruptions otherwise."""
    return NormScorer if threat.is_norm_bounded else CorruptionScorer
