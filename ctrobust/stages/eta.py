"""The run's work estimates for the progress bar and its ETA, revised as the run learns its fractions.

Kept apart from :mod:`ctrobust.stages.pipeline` so the protocol reads as the protocol: the pipeline tells a
:class:`WorkPlan` what it measured, and the plan re-estimates the stages still to come.
"""

from __future__ import annotations

from ctrobust.attacks.cost import TIME_FACTOR, attack_work, autoattack_remaining
from ctrobust.ct.arm import is_base
from ctrobust.stages.progress import AutoAttackWatcher, RunProgress, log
from ctrobust.stages.scoring import Scorer
from ctrobust.threats import ThreatModel

PRIOR_CLEAN, PRIOR_ROBUST = 0.9, 0.2  # work estimates before anything is measured; revised after one beta


class WorkPlan:
    """Estimates of each stage's work from the cost model, revised as the run learns its fractions.

    The final attack sees fewer survivors than the selection curve suggests when it is stronger
    (AutoAttack's 100-step APGD-CE against a 10-step one): ``survivor_ratio`` scales the curve's
    robust fraction to the points left after the final attack's first stage. Its prior was measured
    on the shipped model (benchmarks/RESULTS.md, "Quickstart"); the base model's final attack then
    measures it for the run itself, before CT's final attack is estimated.
    """

    SURVIVOR_RATIO_PRIOR = 0.55

    def __init__(self, scorer: Scorer, progress: RunProgress, n_select: int, n_eval: int, n_classes: int,
                 threat: ThreatModel, check_share: float = 0.0) -> None:
        self.scorer, self.progress, self.threat, self.check_share = scorer, progress, threat, check_share
        self.n_select, self.n_eval, self.n_classes = n_select, n_eval, n_classes
        select, final = scorer.attack_spec("select"), scorer.attack_spec("final")
        weaker = select is not None and final is not None and (
            select.entry.strength(select.steps) < final.entry.strength(final.steps))
        self.survivor_ratio = self.SURVIVOR_RATIO_PRIOR if weaker else 1.0
        self.ct_cost = 1.0  # seconds per unit of the CT model over the original's, once measured

    def work(self, stage: str, clean: float, robust: float) -> float:
        spec = self.scorer.attack_spec(stage)
        n = self.n_select if stage == "select" else self.n_eval
        if spec is None:  # corruptions: one forward per image and cell
            return float(n * max(self.scorer.cells_per_image, 1))
        if stage == "final":
            robust *= self.survivor_ratio
        return attack_work(spec, n, clean, robust, self.n_classes, threat=self.threat)

    def final_work(self, beta: float, robust_base: float, clean: float, robust: float, ct_chance: float = 1.0) -> float:
        """Both arms' final attack (CT's in the original model's units); one arm when beta is 1. ``ct_chance``:
        the chance that a CT arm is attacked at all, while the sweep may still choose beta = 1 (the expected work)."""
        base = self.work("final", clean, robust_base)
        return base if is_base(beta) else base + ct_chance * self.ct_cost * self.work("final", clean, robust)

    def final_survivors(self, select_robust: float) -> float:
        """Expected fraction left after the final attack's first stage, from the selection curve."""
        return select_robust * self.survivor_ratio

    def revise(self, clean: float, robust_ct: float, robust_base: float, pending: list[tuple[str, int, int]],
               ct_chance: float = 1.0) -> None:
        """Re-plan the sweep's pending passes ((key, betas, points) each) and both final attacks (the CT arm's
        weighed by ``ct_chance``, see :meth:`final_work`)."""
        per_beta = self.ct_cost * self.work("select", clean, robust_ct)
        for key, n_betas, n_points in pending:
            self.progress.plan(key, n_betas * per_beta * n_points / max(self.n_select, 1))
        final_work = self.final_work(0.0, robust_base, clean, robust_ct, ct_chance)
        self.progress.plan("final", final_work)
        final = self.scorer.attack_spec("final")
        if final is not None:  # norm balls: the checks, at most their declared share of the final attacks
            self.progress.plan("sanity", self.ct_cost * self.check_share * final_work)

    @staticmethod
    def ct_chance(candidates: list[float], curve: dict[float, float]) -> float:
        """The chance that the sweep ends with a CT arm to attack: 1 when the original model (beta = 1) is no
        candidate, 0 or 1 once it is scored (whether it leads), and even odds before: the estimate then lies between
        the two outcomes' work instead of a factor of about 2 above the one-arm outcome."""
        base = next((b for b in candidates if is_base(b)), None)
        if base is None:
            return 1.0
        if base not in curve:
            return 0.5
        return 0.0 if max(curve, key=lambda b: (curve[b], b)) == base else 1.0


def watch_autoattack(progress: RunProgress, version: str, n: int, n_classes: int, robust_estimate: float,
                     threat: ThreatModel) -> AutoAttackWatcher:
    """Tell the bar which AutoAttack attack runs and how many points are left, and re-estimate the rest."""

    def on_event(attack: str, left: int, total: int) -> None:
        started = not attack.startswith("after ")
        name = attack.removeprefix("after ")
        if name == "clean":
            return
        progress.meter.factor = TIME_FACTOR.get(name, 1.0) if started else 1.0
        verb = "running" if started else "done"
        progress.status(f"{name.upper()} {verb}: {left} of {total} still robust", f"{name.upper()} {left}/{total}")
        expected = round(robust_estimate * total)
        progress.revise_stage(autoattack_remaining(version, name, started, left, n_classes, expected,
                                                    threat=threat))
        log.debug("AutoAttack %s %s: %d of %d points still robust", name, verb, left, total)

    return AutoAttackWatcher(n, on_event)
