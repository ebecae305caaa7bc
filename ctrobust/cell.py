"""The numbers of one evaluated cell (one model, beta, split and attack or corruption grid).

``Counts`` is the one type for a cell's numbers: exact counts (k of n), every accuracy a fraction of them,
so a stored number never drifts. ``Scored`` carries a cell between scorer, store and run: its per-example
outcomes (the counts come from them, nothing else), what the scorer recorded besides, and the base model's
adversarial examples. An attack's own output (``attacks.evaluation.EvalResult``, with tensors and images)
becomes a ``Scored`` through its ``scored()``; a result's arms (``result.ArmResult``) hold ``Counts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctrobust.ct.arm import ArmStyle, arm_label, is_base


@dataclass(frozen=True)
class Counts:
    """Exact counts behind the accuracies; for corruptions, ``robust_correct`` counts (point, cell) pairs."""

    n: int
    clean_correct: int
    robust_correct: int
    cells: int = 1  # corruption cells per point; 1 under an attack

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct / self.n if self.n else 0.0

    @property
    def robust_accuracy(self) -> float:
        return self.robust_correct / (self.n * self.cells) if self.n else 0.0

    @classmethod
    def of(cls, per_example: Mapping[str, Sequence[int]]) -> Counts:
        """Counts from per-example outcomes (0/1 per point, or per point and corruption cell); keys other than
        ``clean`` and ``robust`` under an attack (``robust_white_box``) are the run's extra views, not cells."""
        clean = per_example.get("clean", [])
        if "robust" in per_example:
            return cls(len(clean), int(sum(clean)), int(sum(per_example["robust"])))
        cells = [v for k, v in per_example.items() if k != "clean"]
        return cls(len(clean), int(sum(clean)), int(sum(sum(v) for v in cells)), max(len(cells), 1))

    def to_dict(self) -> dict[str, int]:
        return {"n": self.n, "clean_correct": self.clean_correct, "robust_correct": self.robust_correct,
                "cells": self.cells}


class CountedAccuracies:
    """The accuracies of anything whose numbers are a ``Counts``: one definition of how they follow from it."""

    @property
    def counts(self) -> Counts:
        raise NotImplementedError

    @property
    def n(self) -> int:
        return self.counts.n

    @property
    def clean_accuracy(self) -> float:
        return self.counts.clean_accuracy

    @property
    def robust_accuracy(self) -> float:
        return self.counts.robust_accuracy


@dataclass
class Scored(CountedAccuracies):
    """One cell: per-example correctness (0/1 lists: ``clean`` and ``robust``, or ``clean`` and one list per
    corruption cell), the scorer's summary (seconds, rejected adversarial examples, AutoAttack's accuracy after
    each attack, per-cell corruption accuracy) and, for the base model, its checked adversarial examples
    ({"indices", "images"} as numpy arrays, positions in the split), kept so CT can be attacked with them too.
    """

    per_example: dict[str, list[int]]
    summary: dict[str, object]
    adversarial: dict[str, Any] | None = None

    @property
    def counts(self) -> Counts:
        return Counts.of(self.per_example)


@dataclass(frozen=True)
class Arm:
    """One arm of a run and its final cell: the beta (1: the original model, ``ct/arm.py``) and what the final
    attack scored on it. The checks and the result read an arm's outcomes from here."""

    beta: float
    cell: Scored

    @property
    def is_base(self) -> bool:
        return is_base(self.beta)

    def label(self, style: ArmStyle = "table") -> str:
        return arm_label(self.beta, style)

    @property
    def clean(self) -> list[int]:
        return self.cell.per_example["clean"]

    @property
    def robust(self) -> list[int]:
        return self.cell.per_example["robust"]

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.cell.summary)
