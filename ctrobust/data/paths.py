"""Where data lives: ``--data-dir``, else $CTROBUST_DATA_DIR, else the user cache dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "CTROBUST_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("ctrobust")) / "data"
