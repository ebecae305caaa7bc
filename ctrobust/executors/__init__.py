"""Where the units of a grid run: in this process (local) or as tasks on a Ray cluster (ray).

Both write the same store and give the same results; local stores each cell as it finishes, Ray
stores a unit's cells when its worker returns them (the driver alone writes the store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ctrobust.errors import unknown_name_error
from ctrobust.plan.reproduce import ReproduceConfig
from ctrobust.plan.run_plan import Executor
from ctrobust.results.result import RunResult
from ctrobust.results.store import Store

EXECUTORS = tuple(e.value for e in Executor)


@dataclass
class GridOutcome:
    results: list[RunResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (unit label, error)
    ran: int = 0
    already_stored: int = 0
    cells_computed: int = 0
    cells_reused: int = 0


@dataclass
class Progress:
    """Counts shown on the driver's one bar."""

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    current: str = ""

    def postfix(self) -> str:
        text = f"done {self.done}, running {self.running}, failed {self.failed}"
        return f"{text} | {self.current}" if self.current else text


ProgressFn = Callable[[Progress], None]


class GridRunner(Protocol):
    def __call__(self, config: ReproduceConfig, store: Store, command: str | None, on_progress: ProgressFn | None,
                 ray_address: str | None) -> GridOutcome: ...


def _local(config: ReproduceConfig, store: Store, command: str | None, on_progress: ProgressFn | None,
           ray_address: str | None) -> GridOutcome:
    from ctrobust.executors.local import run_local

    return run_local(config, store, command, on_progress)


def _ray(config: ReproduceConfig, store: Store, command: str | None, on_progress: ProgressFn | None,
         ray_address: str | None) -> GridOutcome:
    from ctrobust.executors.ray_cluster import run_ray  # Ray is imported only when asked for

    return run_ray(config, store, command, on_progress, ray_address)


GRID_RUNNERS: dict[Executor, GridRunner] = {Executor.LOCAL: _local, Executor.RAY: _ray}


def run_grid(config: ReproduceConfig, store: Store, executor: str | Executor = Executor.LOCAL,
             command: str | None = None, on_progress: ProgressFn | None = None,
             ray_address: str | None = None) -> GridOutcome:
    """Run the config's units on ``executor`` (one of ``GRID_RUNNERS``)."""
    try:
        chosen = Executor(executor)
    except ValueError:
        raise unknown_name_error("executor", str(executor), EXECUTORS) from None
    return GRID_RUNNERS[chosen](config, store, command, on_progress, ray_address)
