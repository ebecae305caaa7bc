"""The valid range of beta (and c), checked without importing torch so the CLI can validate early."""

from __future__ import annotations

import math


def check_beta(beta: float, name: str = "beta") -> float:
    """Return ``beta`` as a float, or raise ValueError when it is not in [0, 1]."""
    try:
        value = float(beta)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Expected `{name}` to be a float in [0, 1], but got {beta!r}.") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"Expected `{name}` to be a float in [0, 1], but got {beta!r}.")
    return value
