"""What the store checks in every row it reads: numbers that contradict themselves or their cells.

A store is a file anyone can edit, copy or damage. A cell whose outcomes are impossible (a point robust
but not clean, counts beyond n, accuracies that are not its outcomes' means) is recomputed; a run whose
counts disagree with its per-point outcomes, its gain, its row's columns or its final cells' outcomes
is left out of reports, leaderboards and ``load_results`` with one line naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctrobust.results.result import RunResult


def cell_problem(n: int, clean_accuracy: float, robust_accuracy: float, per_example: Any) -> str | None:
    """Why a stored cell cannot be right, or None: outcomes 0/1 per point for its n points, robust only
    where clean (under an attack), and its accuracies the means of its outcomes."""
    if not isinstance(per_example, Mapping) or not isinstance(per_example.get("clean"), list):
        return "its per-point outcomes are missing"
    for name, values in per_example.items():
        if not isinstance(values, list) or len(values) != n:
            return f"its {name!r} outcomes are not one per point of its {n}"
        if any(v not in (0, 1) or isinstance(v, bool) for v in values):
            return f"its {name!r} outcomes are not 0 or 1"
    clean = per_example["clean"]
    half = 0.5 / max(n, 1)  # accuracies are float means of the counts: they agree to half a point
    if abs(clean_accuracy - sum(clean) / max(n, 1)) > half:
        return f"its clean accuracy {clean_accuracy:.4g} is not the share of clean points, {sum(clean)} of {n}"
    if "robust" in per_example:
        robust = per_example["robust"]
        if any(r and not c for r, c in zip(robust, clean, strict=True)):
            return "points are robust that are not clean"
        expected = sum(robust) / max(n, 1)
    else:  # corruptions: the mean over the corruption cells
        cells = [v for k, v in per_example.items() if k != "clean"]
        expected = sum(sum(v) for v in cells) / max(n * len(cells), 1)
    if abs(robust_accuracy - expected) > half:
        return f"its robust accuracy {robust_accuracy:.4g} is not its outcomes' {expected:.4g}"
    return None


def run_problem(run: RunResult, columns: tuple[float, float] | None = None,
                cells: Mapping[str, Mapping[str, Sequence[int]] | None] | None = None) -> str | None:
    """Why a stored run cannot be right, or None. ``columns``: the row's base and CT robust accuracy
    columns; ``cells``: the per-point outcomes of its final cells by arm (None where not in the store)."""
    from ctrobust.cell import Counts
    from ctrobust.results.uncertainty import run_gain

    for arm, result in (("base", run.base), ("ct", run.ct)):
        counts = result.counts
        if not (0 <= counts.clean_correct <= counts.n and 0 <= counts.robust_correct <= counts.n * counts.cells):
            return f"its {arm} counts are impossible ({counts.clean_correct} clean, {counts.robust_correct} " \
                   f"robust of {counts.n})"
        outcomes = run.per_example.get("base" if arm == "base" or result.clipped else "ct")
        if not isinstance(outcomes, Mapping) or "clean" not in outcomes:
            return f"its {arm} per-point outcomes are missing"
        problem = cell_problem(counts.n, counts.clean_accuracy, counts.robust_accuracy,
                               {k: list(v) for k, v in outcomes.items() if k != "robust_white_box"})
        if problem is not None:
            return f"{arm}: {problem}"
        white = outcomes.get("robust_white_box")
        if white is not None and any(r and not w for r, w in zip(outcomes["robust"], white, strict=False)):
            return f"its {arm} worst case counts points robust that its own attack broke"
        if Counts.of(outcomes) != counts:
            return f"its {arm} counts ({counts.robust_correct} robust of {counts.n}) are not its per-point " \
                   f"outcomes' ({Counts.of(outcomes).robust_correct})"
    if run.n_examples != run.base.counts.n:
        return f"its n ({run.n_examples}) is not its arms' ({run.base.counts.n})"
    ct_outcomes = run.per_example["base"] if run.ct.clipped else run.per_example["ct"]
    gain = run_gain(run.threat, run.per_example["base"], ct_outcomes)
    if abs(gain.gain_points - run.gain.gain_points) > 1e-6:
        return f"its gain {run.gain.gain_points:+.2f} is not its outcomes' {gain.gain_points:+.2f} points"
    if columns is not None and (abs(columns[0] - run.base.robust_accuracy) > 1e-9
                                or abs(columns[1] - run.ct.robust_accuracy) > 1e-9):
        return "its row's accuracy columns are not its result's"
    for arm, cell in (cells or {}).items():
        if cell is None:
            continue
        mine = run.per_example[arm]
        own = mine.get("robust_white_box", mine.get("robust"))  # the cell holds the attack's own outcome
        if list(cell.get("clean", [])) != list(mine["clean"]) or (
                "robust" in cell and list(cell["robust"]) != list(own or [])):
            return f"its {arm} outcomes are not those of the cell it was computed from"
    return None
