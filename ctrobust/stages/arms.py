"""The final attack on both arms (the original model and CT at the chosen beta) on the evaluation split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctrobust.cell import Scored
from ctrobust.ct import curvature_tuned
from ctrobust.ct.arm import BASE_BETA, arm_label, final_betas, is_base
from ctrobust.stages.cells import final_cells
from ctrobust.stages.eta import PRIOR_CLEAN
from ctrobust.stages.finals import OnProvisional, drop_stages
from ctrobust.stages.prepare import RunContext
from ctrobust.stages.scoring import FinalsContext
from ctrobust.stages.sweep import Swept


@dataclass
class Attacked:
    """Both arms' final cells; when beta = 1 won the sweep, "CT" is the base model and one cell serves both."""

    beta: float
    cells: dict[float, Scored]
    views: dict[float, Any]  # each arm's model as attacked
    context: FinalsContext

    @property
    def base(self) -> Scored:
        return self.cells[BASE_BETA]

    @property
    def ct(self) -> Scored:
        return self.cells[self.beta]


class FinalStage:
    """Plans the final attack's work from the sweep, then attacks the arms not already in the store
    (AutoAttack stage by stage across both, its provisional table after each of its attacks)."""

    def __init__(self, run: RunContext, swept: Swept, on_provisional: OnProvisional | None) -> None:
        self.ctx, self.swept, self.on_provisional = run, swept, on_provisional

    def run(self) -> Attacked:
        run, swept, work, beta = self.ctx, self.swept, self.ctx.work, self.swept.beta
        betas = final_betas(beta)
        run.progress.plan("final", work.final_work(beta, swept.base_robust, swept.clean.get(beta, PRIOR_CLEAN),
                                                   swept.curve[beta]))
        context = FinalsContext(
            run.store, run.progress, self.on_provisional, {b: run.cache.identity("final", b) for b in betas},
            {b: 1.0 if is_base(b) else work.ct_cost for b in betas},
            {b: round(run.n_eval * work.final_survivors(swept.base_robust if is_base(b) else swept.curve[b]))
             for b in betas})
        label = " and ".join(arm_label(b) for b in betas) + " on the evaluation split"
        views = {b: run.scorer.wrap(curvature_tuned(run.model, b, impl=run.plan.ctu.value)) for b in betas}
        if run.store is not None:  # what a stored cell or stage is checked against, and kept with a new one
            context.behaviours = {b: run.cache.behaviour(views[b], "final") for b in betas}
        cells = run.cache.get_group("final", betas, None, "final", label,
                                    lambda missing: final_cells(run.scorer, {b: views[b] for b in missing}, context),
                                    lambda b: context.behaviours[b])
        drop_stages(run.store, context.identities.values())
        return Attacked(beta, cells, views, context)
