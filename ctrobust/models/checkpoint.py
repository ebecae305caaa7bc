"""Load checkpoints safely: weights only unless trusted, and a clear error for files that are not one."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ctrobust.errors import CtrobustError

_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<!--")


def check_checkpoint_file(path: Path) -> None:
    """Raise with a message naming ``path`` when it is missing, empty, an HTML page or truncated."""
    if not path.is_file():
        raise CtrobustError(f"Checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CtrobustError(f"{path} is empty, not a checkpoint; replace it with the real file.")
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.lstrip().lower().startswith(_HTML_MARKERS):
        raise CtrobustError(
            f"{path} is an HTML page (a failed or quota-limited download?), not a checkpoint; "
            "it was left untouched: replace it with the real file."
        )
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        raise CtrobustError(f"{path} is a truncated checkpoint (broken zip archive); replace it with the full file.")


def load_checkpoint(path: Path, trust: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``; arbitrary unpickling only when ``trust`` is set."""
    check_checkpoint_file(path)
    try:
        with warnings.catch_warnings():
            # torch warns about legacy (non-zip) files before refusing them; the refusal below says it all.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError:
        if trust:
            raise CtrobustError(f"{path} is not a readable PyTorch checkpoint (UnpicklingError).") from None
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise CtrobustError(
                f"{path} needs arbitrary unpickling ({', '.join(unsafe[:3])}), which can run code from the file; "
                "refused. Pass --trust-checkpoint if you trust its source."
            ) from None
        raise CtrobustError(
            f"{path} is not a readable PyTorch checkpoint (corrupted, or an old non-zip format; "
            "pass --trust-checkpoint only if you trust its source)."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise CtrobustError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}).") from None


def _unsafe_globals(path: Path) -> list[str]:
    """Globals a zip checkpoint would import when unpickled ([] for other files)."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (RuntimeError, pickle.UnpicklingError, ValueError):
        return []


def state_dict_of(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint (bare, or under 'state_dict' / 'model')."""
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CtrobustError(f"{path} does not hold a state dict.")
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}
