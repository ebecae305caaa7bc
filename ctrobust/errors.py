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
