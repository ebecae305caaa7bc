"""Models in, as ``nn.Module`` s taking images in [0, 1] with normalisation inside.

Names are loaded on first use, so the plan can import the torch-free ``ctrobust.models.source`` cheaply.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctrobust.models.normalize import Normalized
    from ctrobust.models.registry import LoadedModel, load_model, resolve_model_dataset
    from ctrobust.models.smallcnn import SmallCNN

_EXPORTS = {"Normalized": "ctrobust.models.normalize", "LoadedModel": "ctrobust.models.registry",
            "load_model": "ctrobust.models.registry", "resolve_model_dataset": "ctrobust.models.registry",
            "SmallCNN": "ctrobust.models.smallcnn"}
__all__ = ["LoadedModel", "Normalized", "SmallCNN", "load_model", "resolve_model_dataset"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ctrobust.models' has no attribute {name!r}")
