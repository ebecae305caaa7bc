"""Before the first stage: the subject on its device, CT's reach, the refusal of a randomised model, the
scorer, the measured execution, and the context every stage of the run shares."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ctrobust.attacks.determinism import is_randomised
from ctrobust.attacks.execution import Execution, probe_execution
from ctrobust.attacks.registry import GRAD_WEIGHT
from ctrobust.ct import ct_coverage, curvature_tuned
from ctrobust.ct.coverage import CTCoverage
from ctrobust.errors import CtrobustError
from ctrobust.plan.run_plan import RunPlan
from ctrobust.results.store import Store
from ctrobust.seeding import seed_everything
from ctrobust.stages.cells import CellCache
from ctrobust.stages.eta import WorkPlan
from ctrobust.stages.progress import RunProgress, log
from ctrobust.stages.scoring import Scorer, scorer_for
from ctrobust.stages.subject import Subject, run_identity
from ctrobust.threats import ThreatModel


@dataclass
class RunContext:
    """What every stage of one run shares: the plan, the subject on its device, the scorer, the cells
    (looked up in the store first), the bar and the estimates of the work still to come."""

    plan: RunPlan
    subject: Subject
    device: torch.device
    model: torch.nn.Module
    coverage: CTCoverage
    ct: Any  # the CT view of the model whose beta the sweep sets
    scorer: Scorer
    cache: CellCache
    work: WorkPlan
    progress: RunProgress
    store: Store | None
    identity: dict[str, Any]
    start: float

    @property
    def threat(self) -> ThreatModel:
        return self.plan.threat

    @property
    def n_select(self) -> int:
        return len(self.subject.splits.select_indices)

    @property
    def n_eval(self) -> int:
        return len(self.subject.splits.eval_indices)

    @property
    def n_classes(self) -> int:
        return self.subject.n_classes


def require_coverage(model: torch.nn.Module, subject: Subject, device: torch.device) -> CTCoverage:
    """CT's reach in the model; a model with no ReLU is refused before any work."""
    coverage = ct_coverage(model, subject.x[:2].clone().to(device))  # copies: a model may modify its input
    if coverage.total == 0:
        raise CtrobustError(
            f"CT reaches no ReLU in {subject.loaded.name}: it has no ReLU to smooth "
            f"(activations found: {coverage.describe_others()})."
        )
    return coverage


def prepare(plan: RunPlan, subject: Subject, model: torch.nn.Module, coverage: CTCoverage, device: torch.device,
            progress: RunProgress, store: Store | None, start: float) -> RunContext:
    """Refuse a randomised model unless every attack handles one, seed, build the scorer, and measure what
    one batch costs on this device (the bar's rate and CT's cost relative to the original model)."""
    x, splits = subject.x, subject.splits
    for spec in (s for s in (plan.select_attack, plan.final_attack) if s is not None):  # before any work
        spec.entry.check_images(spec, plan.threat, tuple(x.shape[1:]))
    _refuse_randomised(model, plan, x[:16].clone().to(device))
    seed_everything(plan.seed)
    scorer = scorer_for(plan.threat)(plan, x, subject.y, splits, device, progress.status)
    ct = curvature_tuned(model, 1.0, impl=plan.ctu.value)
    execution = measure_execution(model, plan, x[splits.eval_indices], progress)
    scorer.wrap = execution.wrap
    scorer.settings["execution"] = execution.to_dict()
    loaded = subject.loaded
    common = {"model": loaded.name, "source": loaded.source.value, "weights": subject.weights,
              "behaviour": subject.behaviour, "preprocessing": loaded.preprocessing, "dataset": loaded.dataset,
              "seed": plan.seed}
    cache = CellCache(store, common, scorer, device, progress, plan.batch_size)
    work = WorkPlan(scorer, progress, len(splits.select_indices), len(splits.eval_indices), subject.n_classes,
                    plan.threat, plan.check_budget)
    work.ct_cost = execution.ct_cost
    return RunContext(plan, subject, device, model, coverage, ct, scorer, cache, work, progress, store,
                      run_identity(plan, subject), start)


def _refuse_randomised(model: torch.nn.Module, plan: RunPlan, x: torch.Tensor) -> None:
    """Before any work: a randomised model (or its CT view) is refused unless every attack of the run is
    AutoAttack's ``rand`` version (expectation over transformation)."""
    ct = curvature_tuned(model, min(plan.candidates), impl="eager")
    if not (is_randomised(model, x) or is_randomised(ct, x)):
        return
    specs = [s for s in (plan.final_attack, plan.select_attack) if s is not None]
    if not plan.threat.is_norm_bounded:
        log.warning("the model is randomised: its corruption accuracy varies from pass to pass, and none of its "
                    "cells is reused from the store")
        return
    if all(s.entry.handles_randomised(s.version) for s in specs):
        log.warning("the model is randomised: evaluated with AutoAttack's rand version (expectation over "
                    "transformation); none of its cells is reused from the store")
        return
    raise CtrobustError(
        "the model is randomised (two passes over the same images give different outputs): an attack would count "
        "points it never attempted as robust. Evaluate it with expectation over transformation: --attack autoattack "
        "--aa-version rand --select-attack autoattack; or make its forward deterministic in eval mode.")


def measure_execution(model: torch.nn.Module, plan: RunPlan, x: torch.Tensor, progress: RunProgress) -> Execution:
    """Time one batch's forward and backward of the original model and of CT on this device (compiling the
    CT unit now, where it is due), pick the micro-batch, and seed the bar's rate with the measured seconds
    per unit instead of a prior."""
    betas = [b for b in plan.candidates if b < 1.0]
    models = {"base": curvature_tuned(model, 1.0, impl=plan.ctu.value)}
    if betas:
        models["ct"] = curvature_tuned(model, min(betas), impl=plan.ctu.value)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    begin = time.perf_counter()
    execution = probe_execution(models, x.to(device), plan.batch_size)
    per_unit = execution.seconds_per_image["base forward+backward"] / GRAD_WEIGHT
    progress.calibrate(per_unit)
    log.debug("execution probe (%.1f s): %s", time.perf_counter() - begin, execution.to_dict())
    return execution
