"""The run's cells: each (stage, beta) looked up in the store before it is computed, and stored when done.

A computed cell is a stage of the progress bar (its work is counted while it runs); a reused one is dropped
from the bar's plan. A model whose outputs stop being finite stores nothing for the cell it was scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from ctrobust.cell import Scored
from ctrobust.ct.arm import arm_label
from ctrobust.errors import CtrobustError, NonFiniteOutput
from ctrobust.models.fingerprint import SplitBehaviour, split_behaviour
from ctrobust.results.provenance import provenance
from ctrobust.results.store import Store
from ctrobust.stages.eta import watch_autoattack
from ctrobust.stages.progress import RunProgress, log
from ctrobust.stages.scoring import FinalsContext, Scorer


class CellCache:
    """Looks each (stage, beta) cell up in the store before computing it, and stores it when done.

    A computed cell is a stage of the progress bar: its work is counted while it runs; a reused one
    is dropped from the plan. A stored cell is reused only when the model that runs now behaves as the
    one that made it on the cell's own images (``models/fingerprint.py``); otherwise it is recomputed,
    with one line saying why, and replaced.
    """

    def __init__(self, store: Store | None, common: dict[str, Any], scorer: Scorer, device: torch.device,
                 progress: RunProgress, batch_size: int = 500) -> None:
        self.store, self.common, self.scorer, self.progress = store, common, scorer, progress
        self.device, self.batch_size = device, batch_size
        self.prov = provenance(device)
        self.computed = self.reused = self.stale = 0

    def identity(self, stage: str, beta: float, n_points: int | None = None) -> dict[str, Any]:
        """The identity a cell of this run is stored under."""
        return {**self.common, **self.scorer.cell_identity(stage, n_points), "beta": float(beta)}

    def behaviour(self, model: nn.Module, stage: str, n_points: int | None = None) -> SplitBehaviour:
        """The model's predictions and mean logits on a stage's images, kept with its cell."""
        return split_behaviour(model, self.scorer.points(stage, n_points)[0], self.batch_size, self.device)

    def get_group(self, stage: str, betas: list[float], n_points: int | None, key: str, label: str,
                  compute: Callable[[list[float]], dict[float, Scored]],
                  behaviour_at: Callable[[float], SplitBehaviour]) -> dict[float, Scored]:
        """Several betas' cells of one stage: those in the store (made by this model) are read, the others
        computed together. ``behaviour_at``: the model's behaviour at a beta on the stage's images."""
        identities = {beta: self.identity(stage, beta, n_points) for beta in betas}
        seen: dict[float, SplitBehaviour] = {}

        def behaviour(beta: float) -> SplitBehaviour:
            if beta not in seen:
                seen[beta] = behaviour_at(beta)
            return seen[beta]

        found: dict[float, Scored] = {}
        if self.store is not None:
            for beta, identity in identities.items():
                hit = self.store.get_cell(identity)
                if hit is not None and self.made_by(hit, behaviour(beta), stage, beta, n_points, identity):
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
        for beta, scored in computed.items():  # the behaviour is seen only where there is a store to keep it
            self.put(identities[beta], scored, behaviour(beta) if self.store is not None else None)
        return {**found, **computed}

    def made_by(self, cell: Scored, now: SplitBehaviour, stage: str, beta: float, n_points: int | None,
                identity: dict[str, Any]) -> bool:
        """Whether a stored cell was made by the model that runs now (seen on the cell's images); a stale
        one is named in one line and marked to be replaced."""
        labels = self.scorer.points(stage, n_points)[1].tolist()
        change = now.change_from(labels, cell.per_example.get("clean", []),
                                 SplitBehaviour.from_dict(cell.summary.get("behaviour")))
        if change is None:
            return True
        kind = "selection" if stage == "select" else "final attack"
        log.warning("warning: the stored %s cell of %s was made by another model (%s on its images): "
                    "recomputing it", kind, arm_label(beta, "prose"), change)
        self.stale += 1
        if self.store is not None:
            self.store.mark_damaged(identity)
        return False

    def put(self, identity: dict[str, Any], scored: Scored, behaviour: SplitBehaviour | None = None,
            replace: bool = False) -> None:
        """Store one cell with this run's provenance and the model's behaviour on its images; ``replace``:
        over a stored one found damaged."""
        if self.store is None:
            return
        if replace:
            self.store.mark_damaged(identity)
        if behaviour is not None:
            scored.summary["behaviour"] = behaviour.to_dict()
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
