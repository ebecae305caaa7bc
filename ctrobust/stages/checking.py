"""The checks of attack evidence, within the plan's budget, after both arms' final attacks (norm-bounded
threats only): what each arm's reported outcomes become (the worst case per point over the white-box attack
and the transferred examples), and the evidence that the attack worked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctrobust.attacks.verify import stored_adversarial_problem
from ctrobust.cell import Arm, Counts, Scored
from ctrobust.checks import binarization
from ctrobust.checks.budget import CheckSizes, final_attack_work, size_checks
from ctrobust.checks.sanity import run_sanity_checks
from ctrobust.ct.arm import BASE_BETA, is_base
from ctrobust.results.evidence import SanityReport
from ctrobust.stages.arms import Attacked
from ctrobust.stages.cells import final_cells
from ctrobust.stages.prepare import RunContext
from ctrobust.stages.progress import log
from ctrobust.stages.scoring import NormScorer


@dataclass
class Checked:
    """Each arm's cell and its reported per-point outcomes; the white-box counts and the checks' report
    where the checks ran (a norm-bounded threat), else None."""

    base_cell: Scored
    ct_cell: Scored
    base_outcomes: dict[str, Any]
    ct_outcomes: dict[str, Any]
    base_white_box: int | None = None
    ct_white_box: int | None = None
    sanity: SanityReport | None = None
    reused: bool = False  # the stored run's checks, already judged


class ChecksStage:
    """Sizes the checks from the plan's budget and the final attacks' outcomes, plans their work on the bar,
    and runs them on the CT view (the base arm's adversarial examples re-checked before they transfer)."""

    def __init__(self, run: RunContext, attacked: Attacked) -> None:
        self.ctx, self.attacked = run, attacked

    def run(self) -> Checked:
        base, ct_cell = self.attacked.base, self.attacked.ct
        scorer = self.ctx.scorer
        if not isinstance(scorer, NormScorer):  # corruptions: no attack to check
            return Checked(base, ct_cell, base.per_example, ct_cell.per_example)
        base = self._with_adversarial(scorer, base)
        stored = self._stored() if base is self.attacked.base else None  # else: damaged examples were recomputed
        if stored is not None:
            return stored
        run, beta, progress = self.ctx, self.attacked.beta, self.ctx.progress
        sizes = self._sizes(scorer)
        progress.start("sanity", "sanity checks (transfer, budget sweep, gradients, binarization)",
                       run.work.ct_cost * sizes.planned, short="checks")
        progress.meter.factor = run.work.ct_cost
        with progress.meter.watching(run.ct):
            base_robust, robust, sanity = run_sanity_checks(
                run.ct, beta, scorer.x_eval, scorer.y_eval, run.threat, scorer.eps, run.plan.seed,
                run.plan.batch_size, run.device, None if is_base(beta) else base.adversarial,
                Arm(BASE_BETA, base), Arm(beta, ct_cell),
                scorer.final_spec, sizes,
                lambda units, after: progress.part(run.work.ct_cost * units, run.work.ct_cost * after))
        progress.finish()
        progress.meter.factor = 1.0
        if is_base(beta):  # "CT" is the original model: one set of outcomes for both
            base_robust = robust
        return Checked(
            base, ct_cell,
            {**base.per_example, "robust": base_robust, "robust_white_box": base.per_example["robust"]},
            {**ct_cell.per_example, "robust": robust, "robust_white_box": ct_cell.per_example["robust"]},
            int(sum(base.per_example["robust"])), int(sum(ct_cell.per_example["robust"])), sanity)

    def _stored(self) -> Checked | None:
        """The checks of the stored run of this very identity (model behaviour, weights, data, settings), made by
        the same ctrobust (commit and package versions), when every cell of this run was reused from the store
        as made by this model: they would find the same."""
        run = self.ctx
        if run.store is None or run.cache.computed or run.cache.stale:
            return None
        stored = run.store.get_run(run.identity)
        if stored is None or stored.sanity is None:
            return None
        made_with = (stored.provenance.get("git_commit"), stored.provenance.get("versions"))
        if made_with != (run.cache.prov["git_commit"], run.cache.prov["versions"]):  # other checks' code
            return None
        run.progress.skip("sanity")
        log.info("checks reused: those of the stored run %s (the same model, data and settings)", stored.run_id)
        base, ct = stored.per_example["base"], stored.per_example["ct"]
        return Checked(self.attacked.base, self.attacked.ct, base, ct, stored.base.white_box_correct,
                       stored.ct.white_box_correct, stored.sanity, reused=True)

    def _with_adversarial(self, scorer: NormScorer, base: Scored) -> Scored:
        """The base arm's cell with sound adversarial examples for the transfer check: re-checked before use,
        recomputed (the same seed gives them back) when missing or damaged, never transferred damaged."""
        problem = None if base.adversarial is None else stored_adversarial_problem(
            base.adversarial, scorer.x_eval, scorer.eps, self.ctx.threat)
        if problem is not None:
            log.warning("warning: the stored adversarial examples of the original model are damaged (%s): "
                        "recomputing them", problem)
        if base.adversarial is None or problem is not None:  # missing (an older ctrobust, another executor)
            context = self.attacked.context
            view = self.attacked.views[BASE_BETA]
            base = final_cells(scorer, {BASE_BETA: view}, context)[BASE_BETA]
            self.ctx.cache.put(context.identities[BASE_BETA], base, self.ctx.cache.behaviour(view, "final"),
                               replace=True)
        return base

    def _sizes(self, scorer: NormScorer) -> CheckSizes:
        """The checks' sizes from the plan's budget and the final attacks' own outcomes (checks/budget.py)."""
        final, threat, plan = scorer.final_spec, self.ctx.threat, self.ctx.plan
        counts = {b: Counts.of(s.per_example) for b, s in self.attacked.cells.items()}
        n = len(scorer.x_eval)
        work = final_attack_work(final, n, [(c.clean_correct, c.robust_correct) for c in counts.values()],
                                 self.ctx.n_classes, threat)
        ct_survivors = counts[min(counts)].robust_correct  # CT's arm: the lowest beta (1 when CT is the base model)
        attack = binarization.binarized_attack(final, threat, plan.seed)
        per_sample = 0.0 if isinstance(attack, str) else binarization.per_sample_work(final, threat)
        return size_checks(plan.check_budget, final, work, n, ct_survivors, per_sample,
                           attack if isinstance(attack, str) else "", threat)
