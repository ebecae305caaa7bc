"""The run's cells: each (stage, beta) looked up in the store before it is computed, and stored when done.

A computed cell is a stage of the progress bar (its work is counted while it runs); a reused one is dropped
from the bar's plan. A model whose outputs stop being finite stores nothing for the cell it was scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ctrobust.cell import Scored
from ctrobust.errors import CtrobustError, NonFiniteOutput
from ctrobust.results.provenance import provenance
from ctrobust.results.store import Store
from ctrobust.stages.eta import watch_autoattack
from ctrobust.stages.progress import RunProgress
from ctrobust.stages.scoring import FinalsContext, Scorer


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


def stage_key(stage: str, beta: float) -> str:
    return f"{stage}:{beta!r}"


def scored_with_progress(progress: RunProgress, scorer: Scorer, ct: Any, stage: str, beta: float,
                          n: int, n_classes: int, robust_estimate: float, n_points: int | None = None) -> Scored:
    """Run one cell with its work counted, and AutoAttack's own progress read from its log."""
    try:
        return run_cell(progress, scorer, ct, stage, beta, n, n_classes, robust_estimate, n_points)
    except NonFiniteOutput as exc:  # nothing is stored for this cell: the exception leaves before put_cell
        where = "choosing beta" if stage == "select" else "the final attack"
        raise CtrobustError(f"{exc} ({where}, beta {beta:g}); nothing was stored for it") from None


def final_cells(scorer: Scorer, models: dict[float, Any], context: FinalsContext) -> dict[float, Scored]:
    """The final attack on each model (AutoAttack stage by stage across them); nothing is stored for a
    model whose outputs stop being finite."""
    try:
        return scorer.final_many(models, context)
    except NonFiniteOutput as exc:
        raise CtrobustError(f"{exc} (the final attack); nothing was stored for it") from None


def run_cell(progress: RunProgress, scorer: Scorer, ct: Any, stage: str, beta: float, n: int, n_classes: int,
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
