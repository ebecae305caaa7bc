"""Errors a user can fix: the CLI prints them as one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CtrobustError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> CtrobustError:
    """Build an 'unknown X' error that suggests the closest known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return CtrobustError(f"Unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.")


class NonFiniteOutput(CtrobustError):
    """The model returned NaN or inf: nothing it scores can be trusted, so the run stops."""


def require_finite(logits: object, where: str) -> None:
    """Raise NonFiniteOutput when a batch of logits holds NaN or inf (a torch tensor)."""
    finite = logits.isfinite()  # type: ignore[attr-defined]
    if not bool(finite.all()):
        bad = int((~finite.flatten(1).all(1)).sum()) if finite.dim() > 1 else int((~finite).sum())
        raise NonFiniteOutput(f"the model's output is NaN or infinite for {bad} of {len(finite)} points {where}")
