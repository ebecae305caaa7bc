"""Run a grid's units as Ray tasks; the driver alone writes the store.

Each unit (one model x dataset x threat x seed x protocol) is a task that asks for one GPU when the
run is on CUDA and ``CTROBUST_RAY_CPUS`` CPUs (default 1) otherwise. The worker evaluates the unit
into an in-memory store and returns its cells and result; the driver writes them in one transaction,
so the store needs no shared filesystem and a unit is stored whole or not at all. A worker that dies
is retried by Ray (``CTROBUST_RAY_RETRIES`` times, default 3); a unit that fails with a user error (a
bad config, a missing checkpoint) is not retried: its error is recorded and the other units go on.

Models and data: the driver loads each unit's model and test set before submitting (to look its run
up by the model's behaviour and the data's digest, see ctrobust/models/fingerprint.py), so that any download
happens once, there; workers then read the same ``--model-dir`` / ``--data-dir``, which must
be a shared filesystem on a multi-node cluster (or prefetched to the same path on every node).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ctrobust.errors import CtrobustError
from ctrobust.executors import GridOutcome, Progress, ProgressFn
from ctrobust.plan.reproduce import ReproduceConfig, Unit
from ctrobust.plan.run_plan import Device, RunPlan
from ctrobust.results.result import RunResult
from ctrobust.results.store import Store, memory_store
from ctrobust.stages.pipeline import run_eval
from ctrobust.stages.subject import stored_run

INSTALL_HINT = "--executor ray needs Ray: pip install -e '.[ray]' in a checkout (or: pip install ray==2.58.0)."


@dataclass
class UnitResult:
    """What a worker sends back: the run's result and its cells, or the user error that stopped it."""

    label: str
    result: dict[str, Any] | None  # RunResult.to_dict(): plain data across the wire
    cells: list[dict[str, Any]]
    error: str | None


def evaluate_unit(plan: RunPlan, label: str, command: str | None) -> UnitResult:
    """The worker's job: one unit into an in-memory store. User errors come back as values, not raised."""
    with memory_store() as store:
        try:
            result = run_eval(plan, store=store, command=command)
        except CtrobustError as exc:
            return UnitResult(label, None, [], str(exc))
        return UnitResult(label, result.to_dict(), store.cell_rows(), None)


def stored_or_todo(units: list[Unit], store: Store) -> tuple[list[RunResult], list[Unit], dict[str, str]]:
    """Load each unit's model and test set on the driver (so any download happens once, here) and look its
    run up by what it would run on: the stored runs, the units to run, and the errors by unit label."""
    stored: list[RunResult] = []
    todo: list[Unit] = []
    failed: dict[str, str] = {}
    for unit in units:
        try:
            found, _subject = stored_run(unit.plan, store)
        except CtrobustError as exc:
            failed[unit.label] = str(exc)
            continue
        if found is not None:
            stored.append(found)
        else:
            todo.append(unit)
    return stored, todo, failed


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CtrobustError(INSTALL_HINT) from None
    return ray


def _resources(plan: RunPlan, cluster_gpus: float) -> dict[str, float]:
    wants_gpu = plan.device is Device.CUDA or (plan.device is Device.AUTO and cluster_gpus > 0)
    if wants_gpu:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": float(os.environ.get("CTROBUST_RAY_CPUS", "1"))}


def _worker_env() -> dict[str, str]:
    """ctrobust's environment settings travel to the workers (data dirs, offline mode, CT unit)."""
    return {k: v for k, v in os.environ.items() if k.startswith("CTROBUST_") and k != "CTROBUST_STORE"}


def run_ray(config: ReproduceConfig, store: Store, command: str | None, on_progress: ProgressFn | None,
            address: str | None) -> GridOutcome:
    ray = _import_ray()
    outcome = GridOutcome()
    progress = Progress(total=len(config.units))
    notify = on_progress or (lambda _p: None)

    def fail(unit: Unit, error: str) -> None:
        outcome.failures.append((unit.label, error))
        store.put_failure(unit.plan.identity(), unit.label, error, "ray")
        progress.failed += 1

    progress.current = "loading models and data on the driver"
    notify(progress)
    stored, todo, unfixable = stored_or_todo(config.units, store)
    outcome.results.extend(stored)
    outcome.already_stored += len(stored)
    progress.done += len(stored)
    for unit in [u for u in config.units if u.label in unfixable]:
        fail(unit, unfixable[unit.label])
    notify(progress)
    if not todo:
        return outcome

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     runtime_env={"env_vars": _worker_env()})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CtrobustError(f"Could not reach the Ray cluster at {address or 'a new local one'}: {exc}") from None
    try:
        retries = int(os.environ.get("CTROBUST_RAY_RETRIES", "3"))
        task = ray.remote(max_retries=retries, retry_exceptions=False)(evaluate_unit)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if any(u.plan.device is Device.CUDA for u in todo) and gpus == 0:
            raise CtrobustError("--device cuda was asked for but the Ray cluster has no GPU; use --device auto or cpu.")
        pending = {task.options(**_resources(u.plan, gpus)).remote(u.plan, u.label, command): u for u in todo}
        progress.running, progress.current = len(pending), ""
        notify(progress)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ready[0])
            try:
                returned: UnitResult = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died more often than the retries allow
                fail(unit, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            else:
                if returned.error is not None:
                    fail(unit, returned.error)
                else:
                    result = _store_unit(store, returned, command)
                    outcome.ran += 1
                    outcome.cells_computed += result.cells_computed
                    outcome.cells_reused += result.cells_reused
                    outcome.results.append(result)
                    progress.done += 1
            progress.running = len(pending)
            notify(progress)
    finally:
        if started_here:
            ray.shutdown()
    return outcome


def _store_unit(store: Store, returned: UnitResult, command: str | None) -> RunResult:
    """A unit's cells, then its run: a driver killed in between stores the run again on the next start."""
    store.put_cell_rows(returned.cells)
    assert returned.result is not None
    result = RunResult.from_dict(returned.result).with_command(command)
    store.put_run(result)
    return result
