"""What a run's numbers can and cannot support: the gain's interval and test, and the selection's flags.

Every place a gain is shown (terminal, result.json, result.csv, reports, tables) reads these, so the
interval, the discordant counts and the warnings are computed once, from the per-example outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ctrobust.ct.arm import is_base
from ctrobust.results.stats import PairedGain, paired_gain, wilson_interval
from ctrobust.threats import ThreatModel


@dataclass(frozen=True)
class SelectionFlags:
    """Warnings about the beta sweep: a flat curve, a choice on the grid's edge, the original model chosen."""

    flat: bool  # every beta's robust accuracy lies inside the 95% interval of the best one
    edge: str | None  # "lowest" / "highest" when the chosen beta is the grid's end (below 1)
    no_ct: bool  # beta = 1 (the original model) won on the held-out points
    band_low: float  # the best point's 95% Wilson interval, in points
    band_high: float
    suggestion: str | None  # an extended grid to try when the choice is on an edge

    def to_dict(self) -> dict[str, object]:
        return {"flat_curve": self.flat, "beta_on_grid_edge": self.edge, "no_ct": self.no_ct,
                "best_band_points": [self.band_low, self.band_high], "suggested_betas": self.suggestion}

    def lines(self, chosen: float) -> list[str]:
        out = []
        if self.no_ct:
            out.append("beta = 1 (the original ReLU model) beat every CT beta on the held-out points: no CT is used")
        if self.flat:
            out.append(f"flat selection curve: every beta lies inside the best one's 95% interval "
                       f"[{self.band_low:.1f}%, {self.band_high:.1f}%], so the chosen beta is not sharply determined")
        if self.edge:
            out.append(f"chosen beta {chosen:.2f} is the {self.edge} beta of the grid: the best may lie outside it"
                       + (f"; try --betas {self.suggestion}" if self.suggestion else ""))
        return out


def selection_flags(curve: Mapping[float, float], chosen: float, grid: Sequence[float], n_select: int) -> SelectionFlags:
    """Flags of a selection curve (robust accuracy per beta, fractions) on ``n_select`` points."""
    best = curve[chosen]
    low, high = wilson_interval(round(best * n_select), n_select)
    flat = len(curve) > 1 and all(low <= acc <= high for acc in curve.values())
    below_one = sorted(b for b in grid if b < 1.0)
    edge = None
    suggestion = None
    if len(below_one) >= 3 and chosen < 1.0:
        if chosen == below_one[0] and chosen > 0.0:
            edge = "lowest"
            suggestion = grid_beyond(chosen, round(below_one[1] - chosen, 6), "lowest")
        elif chosen == below_one[-1]:
            edge = "highest"
            suggestion = grid_beyond(chosen, round(chosen - below_one[-2], 6), "highest")
    return SelectionFlags(flat, edge, is_base(chosen), 100 * low, 100 * high, suggestion)


def grid_beyond(chosen: float, step: float, edge: str) -> str:
    """A --betas range from the chosen beta past the grid's edge: up to 10 more betas at the grid's step where
    (0, 1) has room for them, else 9 at a tenth of the distance to 0 or 1. It always holds the chosen beta."""
    room_to = 1.0 - chosen if edge == "highest" else chosen
    sign = 1 if edge == "highest" else -1
    more = min(int(room_to / step - 1e-9), 10) if step > 0 else 0
    if more < 1:  # no beta at the grid's step left before 0 or 1: a finer one
        step, more = round(room_to / 10, 6), 9
    far = round(chosen + sign * more * step, 6)
    low, high = (chosen, far) if edge == "highest" else (far, chosen)
    return f"{low:g}:{high:g}:{step:g}"


def flags_from_dict(data: Mapping[str, object] | None, curve: Mapping[float, float], chosen: float,
                    n_select: int) -> SelectionFlags:
    """Stored flags back as SelectionFlags; runs stored before flags existed get them computed."""
    if not data:
        return selection_flags(curve, chosen, sorted(curve), n_select)
    band = data["best_band_points"]
    return SelectionFlags(bool(data["flat_curve"]), data["beta_on_grid_edge"], bool(data["no_ct"]),  # type: ignore[arg-type]
                          float(band[0]), float(band[1]), data["suggested_betas"])  # type: ignore[index,arg-type]


def run_gain(threat: ThreatModel, base: Mapping[str, Sequence[int]], ct: Mapping[str, Sequence[int]]) -> PairedGain:
    """CT minus base on the same points, from the per-example outcomes of both final cells.

    Norm threats: robust correctness per point. Corruptions: correctness per (point, cell) pair,
    pooled; such pairs are not independent (one image in many cells), so the interval is too narrow.
    """
    if not threat.is_norm_bounded:
        keys = [k for k in base if k != "clean"]
        return paired_gain([v for k in keys for v in base[k]], [v for k in keys for v in ct[k]])
    return paired_gain(base["robust"], ct["robust"])


def gain_lines(gain: PairedGain) -> list[str]:
    """The gain with its interval and test, then a warning when it is not significant at 5%."""
    out = [gain.describe()]
    if not gain.significant:
        out.append(f"not significant at 5% (McNemar p = {gain.p_value:.3g}): this gain may be noise")
    return out
