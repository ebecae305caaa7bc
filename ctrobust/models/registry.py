"""Model names -> loaded models with their dataset and preprocessing (normalisation inside)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ctrobust.data.registry import canonical_dataset
from ctrobust.errors import CtrobustError, unknown_name_error
from ctrobust.models.normalize import Normalized
from ctrobust.models.smallcnn import SmallCNN

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    dataset: str
    factory: type[nn.Module]

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}_{self.dataset}.pt"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smallcnn": BuiltinModel("smallcnn", "fashion-mnist", SmallCNN),
}


@dataclass
class LoadedModel:
    """A model ready for attacks (input in [0, 1]) and what a result must record about it."""

    name: str
    dataset: str
    model: nn.Module
    source: str
    checkpoint: str | None
    preprocessing: dict[str, object] = field(default_factory=dict)


def _builtin(name: str) -> BuiltinModel:
    key = name.strip().lower().removeprefix("builtin:")
    if key not in BUILTIN_MODELS:
        raise unknown_name_error("model", name, BUILTIN_MODELS)
    return BUILTIN_MODELS[key]


def resolve_model_dataset(model_name: str, dataset: str | None) -> str:
    """The dataset to use: the one given, or the one the model was trained on."""
    entry = _builtin(model_name)
    if dataset is None:
        return entry.dataset
    return canonical_dataset(dataset).name


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint safely (weights only), with an error that names the file when it is not one."""
    if not path.is_file():
        raise CtrobustError(f"Checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CtrobustError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}).") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CtrobustError(f"{path} does not hold a state dict.")
    return state


def build_model(name: str, dataset: str) -> tuple[BuiltinModel, nn.Module]:
    """An untrained model of architecture ``name`` for ``dataset``, wrapped with its normalisation."""
    entry = _builtin(name)
    ds = canonical_dataset(dataset)
    net = entry.factory(in_channels=len(ds.mean), num_classes=ds.num_classes)
    return entry, Normalized(net, ds.mean, ds.std)


def load_model(name: str, dataset: str | None = None, checkpoint: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load a built-in model with its shipped weights (or ``checkpoint``), in eval mode."""
    dataset_name = resolve_model_dataset(name, dataset)
    entry, model = build_model(name, dataset_name)
    path = Path(checkpoint) if checkpoint is not None else entry.weights_path
    if checkpoint is None and dataset_name != entry.dataset:
        raise CtrobustError(
            f"{entry.name} ships weights for {entry.dataset} only; train it with "
            f"`ctrobust train --model {entry.name} --dataset {dataset_name}` and pass --checkpoint."
        )
    if checkpoint is None and not path.is_file():
        raise CtrobustError(
            f"The shipped weights of {entry.name} are missing ({path}); reinstall ctrobust or make them with "
            f"`ctrobust train --model {entry.name} --out {path}`."
        )
    state = load_state_dict(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CtrobustError(f"{path} does not fit {entry.name}: {first}") from None
    model.eval()
    ds = canonical_dataset(dataset_name)
    return LoadedModel(
        name=entry.name,
        dataset=dataset_name,
        model=model,
        source="builtin",
        checkpoint=str(path),
        preprocessing={"mean": list(ds.mean), "std": list(ds.std), "input_size": [len(ds.mean), 32, 32]},
    )


def shipped_weights_info(entry_name: str) -> dict[str, object]:
    """The provenance (command, seed, accuracy) stored beside shipped weights."""
    entry = _builtin(entry_name)
    meta = entry.weights_path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.is_file() else {}
