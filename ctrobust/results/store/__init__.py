"""The results store: an SQLite file of cells, runs, AutoAttack's unfinished stages and artifacts.

One class per thing it holds (``cells.py``, ``runs.py``, ``stages.py``, ``artifacts.py``) over one file and
its transactions (``database.py``); :class:`Store` joins them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ctrobust.errors import CtrobustError
from ctrobust.results.store.artifacts import AuditRows
from ctrobust.results.store.cells import CellRows
from ctrobust.results.store.database import resolve_store_path
from ctrobust.results.store.runs import RunRows, select_runs
from ctrobust.results.store.stages import StageRows

__all__ = ["Store", "existing_store", "memory_store", "open_store", "select_runs"]


class Store(CellRows, RunRows, StageRows, AuditRows):
    """One SQLite store. Open with :func:`open_store` (to write) or :func:`existing_store` (to read only);
    safe to use from several processes."""

    def __enter__(self) -> Store:
        return self


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    return Store(resolve_store_path(path))


def memory_store() -> Store:
    """A store that lives in memory: what a remote worker fills and sends back to the driver."""
    return Store(Path(":memory:"))


def existing_store(path: str | os.PathLike[str] | None = None, read_only: bool = True) -> Store:
    """Open a store that must exist already; read-only (nothing created or converted) unless told otherwise."""
    resolved = resolve_store_path(path)
    if not resolved.is_file():
        raise CtrobustError(
            f"No results store at {resolved}: run `ctrobust eval` or `ctrobust reproduce` first, or pass --store."
        )
    return Store(resolved, read_only=read_only)
