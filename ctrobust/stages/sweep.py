"""The sweep: the candidates scored on the selection split, and beta chosen from the curve."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from ctrobust.cell import Counts, Scored
from ctrobust.errors import CtrobustError, NonFiniteOutput
from ctrobust.models.fingerprint import SplitBehaviour
from ctrobust.plan.run_plan import SweepMode
from ctrobust.plan.selection import HALVING_ETA, choose_beta, survivors, sweep_schedule
from ctrobust.stages.cells import scored_with_progress
from ctrobust.stages.eta import PRIOR_CLEAN, PRIOR_ROBUST
from ctrobust.stages.prepare import RunContext


@dataclass(frozen=True)
class Swept:
    """The sweep's outcome: robust and clean accuracy per candidate on the selection split, the chosen
    beta, and how the sweep ran (betas per batched pass, the curve of each halving rung)."""

    curve: dict[float, float]
    clean: dict[float, float]
    beta: float
    candidates: list[float]
    per_pass: int
    history: list[dict[str, Any]]

    @property
    def base_robust(self) -> float:
        """The selection robust accuracy of the candidate closest to the original model."""
        return self.curve[max(self.curve)]

    def to_dict(self, mode: str) -> dict[str, Any]:
        return {"mode": mode, "betas_per_pass": self.per_pass,
                "rungs": [{"n_points": r["n_points"], "curve": {repr(b): a for b, a in r["curve"].items()}}
                          for r in self.history]}


class SweepStage:
    """Scores the candidates on the selection split: every beta on all of it (grid), or successive
    halving (each rung keeps the best third on three times the points); betas are attacked
    ``betas_per_pass`` at a time in one batched pass where the attack allows it."""

    def __init__(self, run: RunContext) -> None:
        self.plan, self.scorer, self.cache, self.ct, self.progress, self.work = (
            run.plan, run.scorer, run.cache, run.ct, run.progress, run.work)
        # Held-out protocol: the original model (beta = 1) is a candidate too, so CT is used only when it
        # beats ReLU on the held-out points (the honest analogue of the reference code's clipping).
        self.candidates, self.n_select, self.n_classes = list(run.plan.candidates), run.n_select, run.n_classes
        self.rungs = sweep_schedule(self.n_select, len(self.candidates), run.plan.sweep is SweepMode.HALVING)
        self.per_pass = self.scorer.betas_per_pass(self.ct, run.plan.betas_per_pass)
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

    def run(self) -> Swept:
        """Score the candidates (the sweep attacks CT: its units count in the original model's seconds) and
        choose beta."""
        self.progress.meter.factor = self.work.ct_cost
        curve, clean = self._curves()
        self.progress.meter.factor = 1.0
        return Swept(curve, clean, choose_beta(curve), list(self.candidates), self.per_pass, self.history)

    def _curves(self) -> tuple[dict[float, float], dict[float, float]]:
        alive = list(self.candidates)
        curve: dict[float, float] = {}
        clean: dict[float, float] = {}
        self.work.revise(PRIOR_CLEAN, PRIOR_ROBUST, PRIOR_ROBUST, self._pending(0, len(alive), 0),
                         self.work.ct_chance(alive, {}))
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
                    partial(self._score, n_points=subset), partial(self._behaviour, n_points=subset))
                for beta in group:  # exact ratios of counts, not the attack's float32 means
                    counts = Counts.of(scored[beta].per_example)
                    curve[beta], clean[beta] = counts.robust_accuracy, counts.clean_accuracy
                best = max(curve, key=lambda b: (curve[b], b))
                self.work.revise(clean[best], curve[best], curve[max(curve)], self._pending(rung, len(alive), j + 1),
                                 self.work.ct_chance(alive, curve))
            self.history.append({"n_points": n_points, "curve": dict(curve)})
            if not last:
                alive = survivors(curve)
        return curve, clean

    def _behaviour(self, beta: float, n_points: int | None) -> SplitBehaviour:
        """CT at this beta on the points its selection cell scores."""
        self.ct.beta = beta
        return self.cache.behaviour(self.ct, "select", n_points)

    def _score(self, betas: list[float], n_points: int | None) -> dict[float, Scored]:
        if len(betas) == 1:  # one beta: AutoAttack's own progress is read where it is the selection attack
            return {betas[0]: scored_with_progress(self.progress, self.scorer, self.ct, "select", betas[0],
                                                    n_points or self.n_select, self.n_classes, PRIOR_ROBUST,
                                                    n_points)}
        try:
            with self.progress.meter.watching(self.ct):
                return self.scorer.select_many(self.ct, betas, n_points)
        except NonFiniteOutput as exc:  # nothing is stored for these cells
            raise CtrobustError(f"{exc} (choosing beta, betas {', '.join(f'{b:g}' for b in betas)}); "
                                "nothing was stored for them") from None
