"""One evaluation run: load model and data, choose beta on the selection split, score base and CT."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from ctrobust.attacks.determinism import is_randomised
from ctrobust.attacks.execution import Execution, frozen_parameters, probe_execution
from ctrobust.attacks.registry import GRAD_WEIGHT
from ctrobust.attacks.verify import stored_adversarial_problem
from ctrobust.cell import Counts, Scored
from ctrobust.checks import binarization
from ctrobust.checks.budget import CheckSizes, final_attack_work, size_checks
from ctrobust.checks.sanity import ArmOutcomes, run_sanity_checks
from ctrobust.ct import ct_coverage, curvature_tuned
from ctrobust.ct.fused import ctu_backend
from ctrobust.errors import CtrobustError, NonFiniteOutput
from ctrobust.identity import identity_key
from ctrobust.plan.run_plan import Device, Protocol, RunPlan, SweepMode
from ctrobust.plan.selection import HALVING_ETA, choose_beta, survivors, sweep_schedule
from ctrobust.results.evidence import judge
from ctrobust.results.provenance import provenance
from ctrobust.results.result import ArmResult, RunResult
from ctrobust.results.store import Store
from ctrobust.results.uncertainty import run_gain, selection_flags
from ctrobust.seeding import seed_everything
from ctrobust.stages.eta import PRIOR_CLEAN, PRIOR_ROBUST, WorkPlan, watch_autoattack
from ctrobust.stages.finals import OnProvisional, drop_stages
from ctrobust.stages.progress import RunProgress, log
from ctrobust.stages.scoring import FinalsContext, NormScorer, Scorer, scorer_for
from ctrobust.stages.subject import Subject, load_subject, run_identity
from ctrobust.threats import ThreatModel


def resolve_device(name: str | Device) -> torch.device:
    if name == Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == Device.CUDA and not torch.cuda.is_available():
        raise CtrobustError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    return torch.device(str(name))


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


class CellCache:
    """Looks each (stage, beta) cell up in the store before computing it, and stores it when done.

    A computed cell is a stage of the progress bar: its work is counted while it runs; a reused one
    is dropped from the plan.
    """

    def __init__(self, store: Store | None, common: dict[str, Any], scorer: Scorer, device: torch.device,
                 progress: RunProgress) -> None:
        self.store, self.common, self.scorer, self.progress = store, common, scorer, progress
        self.prov = provenance(device)
        self.computed = self.reused = 0

    def identity(self, stage: str, beta: float, n_points: int | None = None) -> dict[str, Any]:
        """The identity a cell of this run is stored under."""
        return {**self.common, **self.scorer.cell_identity(stage, n_points), "beta": float(beta)}

    def get(self, stage: str, beta: float, label: str, compute: Callable[[], Scored]) -> Scored:
        key = _stage_key(stage, beta)
        return self.get_group(stage, [beta], None, key, label, lambda _betas: {beta: compute()})[beta]

    def get_group(self, stage: str, betas: list[float], n_points: int | None, key: str, label: str,
                  compute: Callable[[list[float]], dict[float, Scored]]) -> dict[float, Scored]:
        """Several betas' cells of one stage: those in the store are read, the others computed together."""
        identities = {beta: self.identity(stage, beta, n_points) for beta in betas}
        found: dict[float, Scored] = {}
        if self.store is not None:
            for beta, identity in identities.items():
                hit = self.store.get_cell(identity)
                if hit is not None:
                    found[beta] = hit
        self.reused += len(found)
        missing = [beta for beta in betas if beta not in found]
        if not missing:
            self.progress.skip(key)
            return found
        self.progress.start(key, label, self.progress.planned(key) * len(missing) / len(betas),
                            short=label.split(" (")[0] if stage == "select" else stage)
        computed = compute(missing)
        self.progress.finish()
        self.computed += len(computed)
        for beta, scored in computed.items():
            self.put(identities[beta], scored)
        return {**found, **computed}

    def put(self, identity: dict[str, Any], scored: Scored, replace: bool = False) -> None:
        """Store one cell with this run's provenance; ``replace``: over a stored one found damaged."""
        if self.store is None:
            return
        if replace:
            self.store.mark_damaged(identity)
        meta = {"seconds": scored.summary.get("seconds"), "versions": self.prov["versions"],
                "device": self.prov["device"], "git_commit": self.prov["git_commit"]}
        self.store.put_cell(identity, scored, meta)


def _stage_key(stage: str, beta: float) -> str:
    return f"{stage}:{beta!r}"


def _scored_with_progress(progress: RunProgress, scorer: Scorer, ct: Any, stage: str, beta: float,
                          n: int, n_classes: int, robust_estimate: float, n_points: int | None = None) -> Scored:
    """Run one cell with its work counted, and AutoAttack's own progress read from its log."""
    try:
        return _run_cell(progress, scorer, ct, stage, beta, n, n_classes, robust_estimate, n_points)
    except NonFiniteOutput as exc:  # nothing is stored for this cell: the exception leaves before put_cell
        where = "choosing beta" if stage == "select" else "the final attack"
        raise CtrobustError(f"{exc} ({where}, beta {beta:g}); nothing was stored for it") from None


def _final_cells(scorer: Scorer, models: dict[float, Any], context: FinalsContext) -> dict[float, Scored]:
    """The final attack on each model (AutoAttack stage by stage across them); nothing is stored for a
    model whose outputs stop being finite."""
    try:
        return scorer.final_many(models, context)
    except NonFiniteOutput as exc:
        raise CtrobustError(f"{exc} (the final attack); nothing was stored for it") from None


def _run_cell(progress: RunProgress, scorer: Scorer, ct: Any, stage: str, beta: float, n: int, n_classes: int,
              robust_estimate: float, n_points: int | None = None) -> Scored:
    spec = scorer.attack_spec(stage)

    def run(model: Any, b: float) -> Scored:
        return scorer.select_many(model, [b], n_points)[b] if stage == "select" else scorer.final(model, b)

    with progress.meter.watching(ct):
        if spec is not None and spec.entry.staged:
            previous = progress.meter.factor
            with watch_autoattack(progress, spec.version, n, n_classes, robust_estimate, scorer.threat).attached():
                scored = run(ct, beta)
            progress.meter.factor = previous
            return scored
        return run(ct, beta)


class _Sweep:
    """Scores the candidates on the selection split: every beta on all of it (grid), or successive
    halving (each rung keeps the best third on three times the points); betas are attacked
    ``betas_per_pass`` at a time in one batched pass where the attack allows it."""

    def __init__(self, plan: RunPlan, scorer: Scorer, cache: CellCache, ct: Any, progress: RunProgress,
                 work: WorkPlan, candidates: list[float], n_select: int, n_classes: int) -> None:
        self.plan, self.scorer, self.cache, self.ct, self.progress, self.work = plan, scorer, cache, ct, progress, work
        self.candidates, self.n_select, self.n_classes = candidates, n_select, n_classes
        self.rungs = sweep_schedule(n_select, len(candidates), plan.sweep is SweepMode.HALVING)
        self.per_pass = scorer.betas_per_pass(ct, plan.betas_per_pass)
        self.history: list[dict[str, Any]] = []  # per rung: points and the curve on them

    def _groups(self, betas: list[float]) -> list[list[float]]:
        return [betas[i : i + self.per_pass] for i in range(0, len(betas), self.per_pass)]

    def _pending(self, rung: int, alive: int, groups_done: int) -> list[tuple[str, int, int]]:
        """The passes still to come: this rung's remaining groups, then the later rungs (expected sizes)."""
        out = []
        count = alive
        for r in range(rung, len(self.rungs)):
            groups = self._groups(list(range(count)))
            for j, group in enumerate(groups):
                if r > rung or j >= groups_done:
                    out.append((f"select:r{r}:g{j}", len(group), self.rungs[r]))
            count = max(1, -(-count // HALVING_ETA))
        return out

    def run(self) -> tuple[dict[float, float], dict[float, float]]:
        alive = list(self.candidates)
        curve: dict[float, float] = {}
        clean: dict[float, float] = {}
        self.work.revise(PRIOR_CLEAN, PRIOR_ROBUST, PRIOR_ROBUST, self._pending(0, len(alive), 0))
        for rung, n_points in enumerate(self.rungs):
            last = rung == len(self.rungs) - 1
            subset = None if last else n_points
            curve, clean = {}, {}
            for j, group in enumerate(self._groups(alive)):
                span = f"{group[0]:.2f}" if len(group) == 1 else f"{group[0]:.2f}..{group[-1]:.2f}"
                where = f"rung {rung + 1} of {len(self.rungs)}, {n_points} points" if len(self.rungs) > 1 else (
                    f"{j + 1} of {len(self._groups(alive))}")
                scored = self.cache.get_group(
                    "select", group, subset, f"select:r{rung}:g{j}", f"select \u03b2={span} ({where})",
                    partial(self._score, n_points=subset))
                for beta in group:  # exact ratios of counts, not the attack's float32 means
                    counts = Counts.of(scored[beta].per_example)
                    curve[beta], clean[beta] = counts.robust_accuracy, counts.clean_accuracy
                best = max(curve, key=lambda b: (curve[b], b))
                self.work.revise(clean[best], curve[best], curve[max(curve)], self._pending(rung, len(alive), j + 1))
            self.history.append({"n_points": n_points, "curve": dict(curve)})
            if not last:
                alive = survivors(curve)
        return curve, clean

    def _score(self, betas: list[float], n_points: int | None) -> dict[float, Scored]:
        if len(betas) == 1:  # one beta: AutoAttack's own progress is read where it is the selection attack
            return {betas[0]: _scored_with_progress(self.progress, self.scorer, self.ct, "select", betas[0],
                                                    n_points or self.n_select, self.n_classes, PRIOR_ROBUST,
                                                    n_points)}
        try:
            with self.progress.meter.watching(self.ct):
                return self.scorer.select_many(self.ct, betas, n_points)
        except NonFiniteOutput as exc:  # nothing is stored for these cells
            raise CtrobustError(f"{exc} (choosing beta, betas {', '.join(f'{b:g}' for b in betas)}); "
                                "nothing was stored for them") from None


def run_eval(plan: RunPlan, progress: RunProgress | None = None, store: Store | None = None,
             command: str | None = None, on_provisional: OnProvisional | None = None,
             subject: Subject | None = None) -> RunResult:
    """Run the whole protocol of a resolved plan and return its typed result.

    With a store, every cell is looked up before it is computed and written as soon as it is done,
    and the finished run is recorded with ``command``. ``progress`` (default: none shown) is told
    each stage and the work done inside it. ``on_provisional`` receives the table of both arms after
    each of AutoAttack's attacks (:class:`ctrobust.stages.finals.Provisional`). ``subject``: the model and data
    already loaded for this plan (by :func:`ctrobust.stages.subject.stored_run`); default: loaded here.
    """
    progress = progress or RunProgress("ctrobust eval", disable=True)
    start = time.perf_counter()
    device = resolve_device(plan.device)
    threat = plan.threat
    subject = subject or load_subject(plan)
    loaded, x_all, y_all, splits, n_classes = subject.loaded, subject.x, subject.y, subject.splits, subject.n_classes
    identity = run_identity(plan, subject)
    model = loaded.model.to(device)

    coverage = ct_coverage(model, x_all[:2].clone().to(device))  # copies: a model may modify its input
    if coverage.total == 0:
        raise CtrobustError(
            f"CT reaches no ReLU in {loaded.name}: it has no ReLU to smooth "
            f"(activations found: {coverage.describe_others()})."
        )

    with frozen_parameters(model):  # attacks need input gradients only
        _refuse_randomised(model, plan, x_all[:16].clone().to(device))
        seed_everything(plan.seed)
        scorer = scorer_for(threat)(plan, x_all, y_all, splits, device, progress.status)
        ct = curvature_tuned(model, 1.0, impl=plan.ctu.value)
        execution = _measure_execution(model, plan, x_all[splits.eval_indices], progress)
        scorer.wrap = execution.wrap
        scorer.settings["execution"] = execution.to_dict()
        weights = subject.weights
        common = {"model": loaded.name, "source": loaded.source.value, "weights": weights,
                  "behaviour": subject.behaviour, "preprocessing": loaded.preprocessing, "dataset": loaded.dataset,
                  "seed": plan.seed}
        cache = CellCache(store, common, scorer, device, progress)
        # Held-out protocol: the original model (beta = 1) is a candidate too, so CT is used only when it
        # beats ReLU on the held-out points (the honest analogue of the reference code's clipping).
        candidates = list(plan.candidates)
        n_sel, n_eval = len(splits.select_indices), len(splits.eval_indices)
        work = WorkPlan(scorer, progress, n_sel, n_eval, n_classes, threat, plan.check_budget)
        work.ct_cost = execution.ct_cost
        sweep = _Sweep(plan, scorer, cache, ct, progress, work, candidates, n_sel, n_classes)
        progress.meter.factor = work.ct_cost  # the sweep attacks CT: its units in the original model's seconds
        select_curve, select_clean = sweep.run()
        progress.meter.factor = 1.0
        beta = choose_beta(select_curve)

        base_select = select_curve[max(select_curve)]  # the beta closest to the original model
        finals = [1.0] if beta == 1.0 else [1.0, beta]  # beta = 1 won the sweep: "CT" is the base model
        progress.plan("final", work.final_work(beta, base_select, select_clean.get(beta, PRIOR_CLEAN), select_curve[beta]))
        context = FinalsContext(
            store, progress, on_provisional, {b: cache.identity("final", b) for b in finals},
            {b: 1.0 if b == 1.0 else work.ct_cost for b in finals},
            {b: round(n_eval * work.final_survivors(base_select if b == 1.0 else select_curve[b])) for b in finals})
        label = "base (ReLU)" + ("" if beta == 1.0 else f" and CT \u03b2={beta:.2f}") + " on the evaluation split"
        views = {b: scorer.wrap(curvature_tuned(model, b, impl=plan.ctu.value)) for b in finals}
        scored = cache.get_group("final", finals, None, "final", label,
                                 lambda missing: _final_cells(scorer, {b: views[b] for b in missing}, context))
        drop_stages(store, context.identities.values())
        base, ct_res = scored[1.0], scored[beta]

        ct_outcomes = ct_res.per_example
        base_outcomes = base.per_example
        white_box: int | None = None
        base_white_box: int | None = None
        sanity = None
        if isinstance(scorer, NormScorer):
            problem = None if base.adversarial is None else stored_adversarial_problem(
                base.adversarial, scorer.x_eval, scorer.eps, threat)
            if problem is not None:  # re-checked before use: a damaged artifact is recomputed, never transferred
                log.warning("warning: the stored adversarial examples of the original model are damaged (%s): "
                            "recomputing them", problem)
            if base.adversarial is None or problem is not None:  # missing (an older ctrobust, another executor)
                base = _final_cells(scorer, {1.0: views[1.0]}, context)[1.0]  # the same seed gives them back
                cache.put(context.identities[1.0], base, replace=True)
            sizes = _check_sizes(plan, scorer, {b: scored[b] for b in finals}, n_classes, threat)
            progress.start("sanity", "sanity checks (transfer, budget sweep, gradients, binarization)",
                           work.ct_cost * sizes.planned, short="checks")
            progress.meter.factor = work.ct_cost
            with progress.meter.watching(ct):
                base_robust, robust, sanity = run_sanity_checks(
                    ct, beta, scorer.x_eval, scorer.y_eval, threat, scorer.eps, plan.seed, plan.batch_size, device,
                    base.adversarial if beta != 1.0 else None,
                    ArmOutcomes(1.0, base.per_example["clean"], base.per_example["robust"], base.summary),
                    ArmOutcomes(beta, ct_res.per_example["clean"], ct_res.per_example["robust"], ct_res.summary),
                    scorer.final_spec, sizes)
            progress.finish()
            progress.meter.factor = 1.0
            if beta == 1.0:  # "CT" is the original model: one set of outcomes for both
                base_robust = robust
            white_box = int(sum(ct_res.per_example["robust"]))
            base_white_box = int(sum(base.per_example["robust"]))
            ct_outcomes = {**ct_res.per_example, "robust": robust, "robust_white_box": ct_res.per_example["robust"]}
            base_outcomes = {**base.per_example, "robust": base_robust, "robust_white_box": base.per_example["robust"]}
        ct_measured = ct_outcomes  # CT's own outcomes, before any clipping to the base
        ct_arm = ArmResult(beta, Counts.of(ct_outcomes), _details(ct_res.summary), white_box_correct=white_box)
        base_arm = ArmResult(1.0, Counts.of(base_outcomes), _details(base.summary), white_box_correct=base_white_box)
        if plan.protocol is Protocol.PAPER and ct_arm.robust_accuracy < base_arm.robust_accuracy:
            ct_arm = ArmResult(beta, base_arm.counts, base_arm.details, clipped=True, clipped_from=ct_arm.robust_accuracy)
            ct_outcomes = base_outcomes
        gain = run_gain(threat, base_outcomes, ct_outcomes)
        if sanity is not None:
            final_spec = scorer.attack_spec("final")
            judge(sanity, gain.gain_points, scorer.final_label, final_spec is not None and final_spec.entry.plain_gradient)
        flags = selection_flags(select_curve, beta, candidates, n_sel)

        result = RunResult(
            run_id=identity_key(identity)[:12], identity=identity, model=loaded.name, dataset=loaded.dataset, threat=threat,
            eps=plan.eps, attack=scorer.final_label, select_attack=scorer.select_label, seed=plan.seed,
            protocol=plan.protocol, n_examples=n_eval, n_select=n_sel, betas=list(plan.betas), candidates=candidates,
            base_candidate=plan.base_candidate, select_curve=select_curve, select_clean=select_clean, beta=beta,
            base=base_arm, ct=ct_arm, gain=gain, flags=flags,
            per_example={"base": base_outcomes, "ct": ct_measured},
            eval_indices=splits.eval_indices, select_indices=splits.select_indices, weights_digest=weights,
            model_source={"source": loaded.source.value, "checkpoint": loaded.checkpoint,
                          "architecture": _architecture(loaded.model), **loaded.preprocessing},
            provenance=cache.prov, settings=scorer.settings, sanity=sanity, ct_coverage=coverage.to_dict(),
            batch_size=plan.batch_size, ctu=ctu_backend(plan.ctu.value, device),
            wall_seconds=round(time.perf_counter() - start, 2), cells_computed=cache.computed,
            cells_reused=cache.reused, command=command,
            sweep={"mode": plan.sweep.value, "betas_per_pass": sweep.per_pass,
                   "rungs": [{"n_points": r["n_points"], "curve": {repr(b): a for b, a in r["curve"].items()}}
                             for r in sweep.history]},
            final_cells={"base": identity_key(context.identities[1.0]), "ct": identity_key(context.identities[beta])},
        )
        if store is not None:
            store.put_run(result)
        return result


def _check_sizes(plan: RunPlan, scorer: NormScorer, finals: dict[float, Scored], n_classes: int,
                 threat: ThreatModel) -> CheckSizes:
    """The checks' sizes from the plan's budget and the final attacks' own outcomes (checks/budget.py)."""
    final = scorer.final_spec
    counts = {b: Counts.of(s.per_example) for b, s in finals.items()}
    n = len(scorer.x_eval)
    work = final_attack_work(final, n, [(c.clean_correct, c.robust_correct) for c in counts.values()], n_classes,
                             threat)
    ct_survivors = counts[min(counts)].robust_correct  # CT's arm: the lowest beta (1 when CT is the base model)
    attack = binarization.binarized_attack(final, threat, plan.seed)
    per_sample = 0.0 if isinstance(attack, str) else binarization.per_sample_work(final, threat)
    return size_checks(plan.check_budget, final, work, n, ct_survivors, per_sample,
                       attack if isinstance(attack, str) else "", threat)


def _measure_execution(model: torch.nn.Module, plan: RunPlan, x: torch.Tensor, progress: RunProgress) -> Execution:
    """Before the first stage: time one batch's forward and backward of the original model and of CT on
    this device (compiling the CT unit now, where it is due), pick the micro-batch, and seed the bar's
    rate with the measured seconds per unit instead of a prior."""
    betas = [b for b in plan.candidates if b < 1.0]
    models = {"base": curvature_tuned(model, 1.0, impl=plan.ctu.value)}
    if betas:
        models["ct"] = curvature_tuned(model, min(betas), impl=plan.ctu.value)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    start = time.perf_counter()
    execution = probe_execution(models, x.to(device), plan.batch_size)
    per_unit = execution.seconds_per_image["base forward+backward"] / GRAD_WEIGHT
    progress.calibrate(per_unit)
    log.debug("execution probe (%.1f s): %s", time.perf_counter() - start, execution.to_dict())
    return execution


def _architecture(model: torch.nn.Module) -> str:
    """The network's class name, under any normalisation wrapper."""
    inner = getattr(model, "model", None)
    while isinstance(inner, torch.nn.Module):
        model, inner = inner, getattr(inner, "model", None)
    return type(model).__name__


def _details(summary: dict[str, object]) -> dict[str, object]:
    """A cell's summary without the accuracies, which the counts carry."""
    return {k: v for k, v in summary.items() if k not in ("clean_accuracy", "robust_accuracy", "n")}
