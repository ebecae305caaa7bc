"""Stable keys for identities (JSON-able dicts of everything that determines a number).

A leaf module: the plan, the store and the pipeline all key on it, and it imports nothing of theirs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def identity_key(identity: dict[str, Any]) -> str:
    """A stable key for a JSON-able identity: sorted keys, floats as written by json (their repr, exact)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def indices_digest(indices: list[int]) -> str:
    """Short digest of a split's indices, so two splits with equal n but other points differ."""
    return hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()[:16]
