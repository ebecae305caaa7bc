"""Where a model comes from: torch-free, so the plan can name a source without loading a model."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ModelSource(StrEnum):
    """Where a model comes from; ``models/registry.py`` holds one loader per source."""

    BUILTIN = "builtin"
    ROBUSTBENCH = "robustbench"
    TORCHVISION = "torchvision"
    PAPER = "paper"
    CUSTOM = "custom"
    MODULE = "module"  # an nn.Module handed to ctrobust.run from Python


@dataclass(frozen=True)
class ModelName:
    """A model name parsed once: its source and the name that source knows it by."""

    source: ModelSource
    name: str
