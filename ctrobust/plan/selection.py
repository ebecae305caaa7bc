"""The beta grid and the choice of beta on the selection split."""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence

from ctrobust.ct.beta_range import check_beta
from ctrobust.errors import CtrobustError

MAX_GRID = 1000
log = logging.getLogger("ctrobust")
PAPER_BETAS: tuple[float, ...] = tuple(round(0.70 + 0.01 * i, 2) for i in range(30))


def parse_betas(given: str | Sequence[float]) -> list[float]:
    """'0.8,0.9', 'start:stop:step' (stop included when on the grid) or a sequence of floats -> sorted unique
    betas."""
    if not isinstance(given, str):
        return _checked(list(given), ",".join(f"{v:g}" for v in given))
    text = given.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0:
                raise ValueError
            start, stop, step = parts
            if not all(math.isfinite(v) for v in parts):
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            if count > MAX_GRID:
                raise CtrobustError(
                    f"--betas {text!r} gives {count} betas; at most {MAX_GRID} (each is an attack run): use a coarser step."
                )
            values = [round(start + i * step, 10) for i in range(max(count, 0))]
        else:
            values = [float(p) for p in text.split(",") if p.strip()]
            if len(values) > MAX_GRID:
                raise CtrobustError(f"--betas lists {len(values)} betas; at most {MAX_GRID}.")
    except ValueError:
        raise CtrobustError(f"Expected --betas as 'b1,b2,...' or 'start:stop:step', but got {text!r}.") from None
    return _checked(values, text)


def _checked(values: list[float], text: str) -> list[float]:
    """Betas in [0, 1], at most MAX_GRID of them, sorted, unique and distinguishable in float32."""
    if len(values) > MAX_GRID:
        raise CtrobustError(f"--betas lists {len(values)} betas; at most {MAX_GRID}.")
    if not values:
        raise CtrobustError(f"--betas {text!r} gives no beta.")
    try:
        unique = sorted({check_beta(v) for v in values})
    except ValueError as exc:
        raise CtrobustError(str(exc).replace("`beta`", "every beta in --betas")) from None
    return _distinguishable(unique)


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _distinguishable(betas: list[float]) -> list[float]:
    """CT computes in float32: betas with one float32 value are one function, so one candidate (with a note)."""
    kept: list[float] = []
    for beta in betas:
        if kept and _float32(beta) == _float32(kept[-1]):
            log.warning("note: --betas %r and %r are one beta in float32, where CT computes: %r is dropped",
                        kept[-1], beta, beta)
            continue
        kept.append(beta)
    return kept


def choose_beta(curve: dict[float, float]) -> float:
    """Beta of highest robust accuracy; ties go to the larger beta (closer to the original model)."""
    if not curve:
        raise CtrobustError("No beta was evaluated.")
    return max(curve, key=lambda b: (curve[b], b))


HALVING_ETA = 3  # each rung keeps the best third of its betas, on three times the points
HALVING_MIN_POINTS = 50  # no rung scores fewer selection points than this


def sweep_schedule(n_select: int, n_candidates: int, halving: bool) -> list[int]:
    """Points per rung of the sweep: one rung on the whole split, or successive halving's growing prefixes.

    Halving: rungs on n / 9, n / 3 and n points (fewer rungs when a rung would score fewer than
    HALVING_MIN_POINTS points or keep a single beta before the last).
    """
    if not halving:
        return [n_select]
    rungs = [n_select]
    survivors = n_candidates
    while rungs[0] // HALVING_ETA >= HALVING_MIN_POINTS and survivors > HALVING_ETA:
        rungs.insert(0, rungs[0] // HALVING_ETA)
        survivors = math.ceil(survivors / HALVING_ETA)
    return rungs


def survivors(curve: dict[float, float], keep_fraction: int = HALVING_ETA) -> list[float]:
    """The best 1 / keep_fraction of a rung's betas (at least one); ties go to the larger beta, as in choose_beta."""
    ranked = sorted(curve, key=lambda b: (curve[b], b), reverse=True)
    return sorted(ranked[: max(1, math.ceil(len(ranked) / keep_fraction))])
