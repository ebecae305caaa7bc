"""Where the units of a grid run: in this process (local) or as tasks on a Ray cluster (ray).

Both write the same store and give the same results; local stores each cell as it finishes, Ray
stores a unit's cells when its worker returns them (the driver alone writes the store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ctrobust.errors import unknown_name_error
from ctrobust.plan import Executor
from ctrobust.reproduce import ReproduceConfig
from ctrobust.result import RunResult
from ctrobust.store import Store

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


def run_grid(config: ReproduceConfig, store: Store, executor: str = "local", command: str | None = None,
             on_progress: ProgressFn | None = None, ray_address: str | None = None) -> GridOutcome:
    if executor == "local":
        from ctrobust.executors.local import run_local

        return run_local(config, store, command, on_progress)
    if executor == "ray":
        from ctrobust.executors.ray_cluster import run_ray

        return run_ray(config, store, command, on_progress, ray_address)
    raise unknown_name_error("executor", executor, EXECUTORS)
