"""The RobustBench model zoo through the real ``robustbench`` package.

Checkpoints live in RobustBench's layout, ``<model-dir>/<dataset>/<threat>/<name>.pt``. ctrobust
checks each file before robustbench reads it (present, not an HTML page, loadable with
``weights_only=True``), so that a bad file gets an error naming it and is never downloaded over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch.nn as nn

from ctrobust.data.offline import offline
from ctrobust.datasets import DatasetName
from ctrobust.errors import CtrobustError, unknown_name_error
from ctrobust.models.checkpoint import load_checkpoint

ZOO_DATASETS = (DatasetName.CIFAR10, DatasetName.CIFAR100, DatasetName.IMAGENET)


@lru_cache(maxsize=1)
def zoo() -> dict[str, dict[str, dict[str, Any]]]:
    """{dataset: {threat: {name: entry}}} from robustbench's model_dicts."""
    from ctrobust.compat.robustbench_import import import_robustbench

    import_robustbench()
    from robustbench.model_zoo import model_dicts

    return {ds.value: {th.value: dict(models) for th, models in by_threat.items()} for ds, by_threat in model_dicts.items()}


def zoo_names() -> list[str]:
    """Every model name in the zoo, each once."""
    return sorted({name for by_threat in zoo().values() for models in by_threat.values() for name in models})


def checkpoint_source(name: str, dataset: str, threat: str) -> str:
    """Where a zoo checkpoint comes from: the Google Drive file(s) robustbench downloads, and its model page."""
    ids = zoo_entry(name, dataset, threat).get("gdrive_id")
    ids = ids if isinstance(ids, list) else [ids] if ids else []
    drive = ", ".join(f"https://drive.google.com/uc?id={i}" for i in ids)
    page = f"https://robustbench.github.io/ ({dataset} {threat} leaderboard, model {name})"
    return f"download it from {drive} (as robustbench does) or via {page}" if drive else f"see {page}"


def zoo_datasets_of(name: str) -> list[str]:
    return [ds for ds in ZOO_DATASETS if any(name in models for models in zoo().get(ds, {}).values())]


def zoo_threats_of(name: str, dataset: str) -> list[str]:
    return [th for th, models in zoo().get(dataset, {}).items() if name in models]


def zoo_entry(name: str, dataset: str, threat: str) -> dict[str, Any]:
    models = zoo().get(dataset, {}).get(threat)
    if models is None:
        raise CtrobustError(f"RobustBench has no {threat} zoo for {dataset}.")
    if name not in models:
        elsewhere = zoo_threats_of(name, dataset)
        if elsewhere:
            raise CtrobustError(
                f"{name} is in RobustBench's {dataset} {'/'.join(elsewhere)} zoo, not {threat}; "
                f"pass --zoo-threat {elsewhere[0]} to evaluate it under this threat."
            )
        raise unknown_name_error(f"RobustBench {dataset} {threat} model", name, models)
    return models[name]


def checkpoint_paths(name: str, dataset: str, threat: str, model_dir: Path) -> list[Path]:
    entry = zoo_entry(name, dataset, threat)
    base = model_dir / dataset / threat / f"{name}.pt"
    ids = entry.get("gdrive_id")
    if isinstance(ids, list):
        return [Path(f"{base}_m{i}.pt") for i in range(len(ids))]
    return [base]


def _timm_name(name: str, dataset: str, threat: str) -> str:
    return f"{name.lower().replace('-', '_')}_{dataset}_{threat.lower()}"


def _needs_files(name: str, dataset: str, threat: str) -> bool:
    """False for models robustbench takes from timm or torchvision instead of its Drive files."""
    import timm

    if timm.is_model(_timm_name(name, dataset, threat)):
        return False
    return not (dataset == "imagenet" and "Standard" in name)


@contextlib.contextmanager
def _trusted_loads(trust: bool) -> Iterator[None]:
    """Let robustbench's own ``torch.load`` unpickle arbitrary objects only when the user trusts the file."""
    if not trust:
        yield
        return
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


def load_zoo_model(name: str, dataset: str, threat: str, model_dir: Path, trust: bool = False) -> nn.Module:
    """A zoo model with its trained weights, in eval mode; downloads only what is missing."""
    zoo_entry(name, dataset, threat)
    from robustbench.utils import load_model as rb_load_model

    if _needs_files(name, dataset, threat):
        missing = [p for p in checkpoint_paths(name, dataset, threat, model_dir) if not p.is_file()]
        if missing and offline():
            raise CtrobustError(
                f"Checkpoint of {name} not found and downloads are off: {checkpoint_source(name, dataset, threat)}, "
                f"and put it at {missing[0]}"
            )
        for path in checkpoint_paths(name, dataset, threat, model_dir):
            if path.is_file():
                load_checkpoint(path, trust)  # refuses HTML pages, truncated files, unsafe pickles
    try:
        with _trusted_loads(trust):
            model = rb_load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat)
    except CtrobustError:
        raise
    except Exception as exc:  # download failures (requests, gdown, timm hub) surface as many types
        target = checkpoint_paths(name, dataset, threat, model_dir)[0] if _needs_files(name, dataset, threat) else None
        where = (f"{checkpoint_source(name, dataset, threat)}, and put it at {target}" if target
                 else "it comes from timm/torchvision: fill their cache while online")
        raise CtrobustError(f"Could not load RobustBench model {name} ({type(exc).__name__}); {where}.") from None
    return model.eval()


def build_zoo_architecture(name: str, dataset: str, threat: str) -> nn.Module:
    """The architecture of a zoo entry with random weights (no download), for the CT audit."""
    return zoo_entry(name, dataset, threat)["model"]().eval()
