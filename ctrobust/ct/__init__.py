"""Curvature Tuning: the CT unit and the model transform that applies it.

Names are loaded on first use, so importing a torch-free submodule (``ctrobust.ct.beta_range``) does
not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctrobust.ct.apply import CurvatureTuned, curvature_tuned
    from ctrobust.ct.beta_range import check_beta
    from ctrobust.ct.coverage import CTCoverage, ct_coverage
    from ctrobust.ct.unit import ctu

_EXPORTS = {
    "CurvatureTuned": "ctrobust.ct.apply", "curvature_tuned": "ctrobust.ct.apply",
    "CTCoverage": "ctrobust.ct.coverage", "ct_coverage": "ctrobust.ct.coverage",
    "check_beta": "ctrobust.ct.beta_range", "ctu": "ctrobust.ct.unit",
}
__all__ = ["CTCoverage", "CurvatureTuned", "check_beta", "ct_coverage", "ctu", "curvature_tuned"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ctrobust.ct' has no attribute {name!r}")
