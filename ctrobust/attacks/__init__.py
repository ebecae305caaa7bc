"""Attacks on models that take images in [0, 1]; every counted success is re-checked.

Loaded on first use, so the torch-free ``ctrobust.attacks.spec`` can be imported by the CLI cheaply.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctrobust.attacks.evaluation import EvalResult
    from ctrobust.attacks.spec import ATTACKS

_EXPORTS = {"ATTACKS": "ctrobust.attacks.spec", "EvalResult": "ctrobust.attacks.evaluation"}
__all__ = ["ATTACKS", "EvalResult"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ctrobust.attacks' has no attribute {name!r}")
