"""The run's result from what its stages measured: both arms' counts (clipped to the base under the paper's
protocol), the paired gain, the warnings the evidence calls for, and everything that says what ran."""

from __future__ import annotations

import time
from typing import Any

import torch

from ctrobust.cell import Counts
from ctrobust.ct.arm import BASE_BETA
from ctrobust.ct.fused import ctu_backend
from ctrobust.identity import identity_key
from ctrobust.plan.run_plan import Protocol
from ctrobust.results.evidence import judge
from ctrobust.results.result import ArmResult, RunResult
from ctrobust.results.uncertainty import run_gain, selection_flags
from ctrobust.stages.arms import Attacked
from ctrobust.stages.checking import Checked
from ctrobust.stages.prepare import RunContext
from ctrobust.stages.sweep import Swept


def arms(run: RunContext, beta: float, checked: Checked) -> tuple[ArmResult, ArmResult, dict[str, Any]]:
    """The base and CT arms, and the CT outcomes the gain is taken on: CT's own, or the base's where the
    paper's protocol clips a CT arm that lost to the base."""
    ct_arm = ArmResult(beta, Counts.of(checked.ct_outcomes), _details(checked.ct_cell.summary),
                       white_box_correct=checked.ct_white_box)
    base_arm = ArmResult(BASE_BETA, Counts.of(checked.base_outcomes), _details(checked.base_cell.summary),
                         white_box_correct=checked.base_white_box)
    ct_outcomes = checked.ct_outcomes
    if run.plan.protocol is Protocol.PAPER and ct_arm.robust_accuracy < base_arm.robust_accuracy:
        ct_arm = ArmResult(beta, base_arm.counts, base_arm.details, clipped=True, clipped_from=ct_arm.robust_accuracy)
        ct_outcomes = checked.base_outcomes
    return base_arm, ct_arm, ct_outcomes


def run_result(run: RunContext, swept: Swept, attacked: Attacked, checked: Checked,
               command: str | None) -> RunResult:
    """The typed result of the run, judged (the warnings its evidence calls for) and ready to store."""
    plan, subject, scorer, beta = run.plan, run.subject, run.scorer, swept.beta
    loaded, splits = subject.loaded, subject.splits
    base_arm, ct_arm, gained = arms(run, beta, checked)
    gain = run_gain(run.threat, checked.base_outcomes, gained)
    if checked.sanity is not None and not checked.reused:
        final_spec = scorer.attack_spec("final")
        judge(checked.sanity, gain.gain_points, scorer.final_label,
              final_spec is not None and final_spec.entry.plain_gradient, _scale_sensitive(scorer))
    identities = attacked.context.identities
    return RunResult(
        run_id=identity_key(run.identity)[:12], identity=run.identity, model=loaded.name, dataset=loaded.dataset,
        threat=run.threat, eps=plan.eps, attack=scorer.final_label, select_attack=scorer.select_label,
        seed=plan.seed, protocol=plan.protocol, n_examples=run.n_eval, n_select=run.n_select, betas=list(plan.betas),
        candidates=swept.candidates, base_candidate=plan.base_candidate, select_curve=swept.curve,
        select_clean=swept.clean, beta=beta, base=base_arm, ct=ct_arm, gain=gain,
        flags=selection_flags(swept.curve, beta, swept.candidates, run.n_select),
        per_example={"base": checked.base_outcomes, "ct": checked.ct_outcomes},  # CT's own, before any clipping
        eval_indices=splits.eval_indices, select_indices=splits.select_indices, weights_digest=subject.weights,
        model_source={"source": loaded.source.value, "checkpoint": loaded.checkpoint,
                      "architecture": _architecture(loaded.model), **loaded.preprocessing},
        provenance=run.cache.prov, settings=scorer.settings, sanity=checked.sanity,
        ct_coverage=run.coverage.to_dict(), batch_size=plan.batch_size, ctu=ctu_backend(plan.ctu.value, run.device),
        wall_seconds=round(time.perf_counter() - run.start, 2), cells_computed=run.cache.computed,
        cells_reused=run.cache.reused, command=command, sweep=swept.to_dict(plan.sweep.value),
        final_cells={"base": identity_key(identities[BASE_BETA]), "ct": identity_key(identities[beta])},
    )


def _scale_sensitive(scorer: Any) -> list[str]:
    """The run's attacks whose loss the logits' scale can flatten, as the warnings name them."""
    return [f"the {role} attack ({spec.label()})" for role, stage in (("selection", "select"), ("final", "final"))
            if (spec := scorer.attack_spec(stage)) is not None and not spec.entry.scale_invariant]


def _architecture(model: torch.nn.Module) -> str:
    """The network's class name, under any normalisation wrapper."""
    inner = getattr(model, "model", None)
    while isinstance(inner, torch.nn.Module):
        model, inner = inner, getattr(inner, "model", None)
    return type(model).__name__


def _details(summary: dict[str, object]) -> dict[str, object]:
    """A cell's summary without the accuracies, which the counts carry, and the model's behaviour on the
    points (kept in the store to check a reused cell, not a result)."""
    return {k: v for k, v in summary.items() if k not in ("clean_accuracy", "robust_accuracy", "n", "behaviour")}
