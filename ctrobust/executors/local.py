"""Run a grid's units one after another in this process, every cell written to the store as it finishes."""

from __future__ import annotations

from ctrobust.errors import CtrobustError
from ctrobust.executors import GridOutcome, Progress, ProgressFn
from ctrobust.plan.reproduce import ReproduceConfig
from ctrobust.results.store import Store
from ctrobust.stages.pipeline import run_eval
from ctrobust.stages.progress import RunProgress
from ctrobust.stages.subject import stored_run


def run_local(config: ReproduceConfig, store: Store, command: str | None, on_progress: ProgressFn | None) -> GridOutcome:
    outcome = GridOutcome()
    progress = Progress(total=len(config.units))
    notify = on_progress or (lambda _p: None)
    for unit in config.units:
        identity = unit.plan.identity()
        try:
            stored, subject = stored_run(unit.plan, store)
        except CtrobustError as exc:  # the model or data cannot be loaded: this unit fails, the others go on
            outcome.failures.append((unit.label, str(exc)))
            store.put_failure(identity, unit.label, str(exc), "local")
            progress.failed += 1
            notify(progress)
            continue
        if stored is not None:
            outcome.results.append(stored)
            outcome.already_stored += 1
            progress.done += 1
            notify(progress)
            continue
        progress.running, progress.current = 1, unit.label
        notify(progress)

        def on_step(step: str, label: str = unit.label) -> None:
            progress.current = f"{label}: {step}"
            notify(progress)

        try:
            tracker = RunProgress(unit.label, disable=True, on_label=on_step)
            result = run_eval(unit.plan, progress=tracker, store=store, command=command, subject=subject)
        except CtrobustError as exc:
            outcome.failures.append((unit.label, str(exc)))
            store.put_failure(identity, unit.label, str(exc), "local")
            progress.failed += 1
        else:
            outcome.ran += 1
            outcome.cells_computed += result.cells_computed
            outcome.cells_reused += result.cells_reused
            outcome.results.append(result)
            progress.done += 1
        progress.running, progress.current = 0, ""
        notify(progress)
    return outcome
