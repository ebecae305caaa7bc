"""Where checkpoints live: ``--model-dir``, else $CTROBUST_MODEL_DIR, else the user cache dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

MODEL_DIR_ENV = "CTROBUST_MODEL_DIR"


def resolve_model_dir(model_dir: str | os.PathLike[str] | None) -> Path:
    if model_dir is not None:
        return Path(model_dir).expanduser()
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("ctrobust")) / "models"



def paper_checkpoint_path(name: str, dataset: str, model_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where `ctrobust train` puts a paper: ResNet and where `eval` looks for it without --checkpoint."""
    return resolve_model_dir(model_dir) / "paper" / f"{name}_{dataset}.pt"
