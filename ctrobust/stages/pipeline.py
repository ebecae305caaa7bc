"""One evaluation run, as the protocol reads: prepare the subject, sweep beta on the selection split, attack
both arms on the evaluation split, check the attack's evidence, and assemble the result.

Each stage is an object in its own module that owns its estimate of the work (told to the bar) and its work:
``prepare`` (the subject on its device, the scorer, the measured execution), ``SweepStage`` (sweep.py),
``FinalStage`` (arms.py), ``ChecksStage`` (checking.py) and ``run_result`` (assemble.py).
"""

from __future__ import annotations

import time

from ctrobust.attacks.execution import frozen_parameters
from ctrobust.plan.run_plan import RunPlan
from ctrobust.results.result import RunResult
from ctrobust.results.store import Store
from ctrobust.stages.arms import FinalStage
from ctrobust.stages.assemble import run_result
from ctrobust.stages.checking import ChecksStage
from ctrobust.stages.finals import OnProvisional
from ctrobust.stages.prepare import prepare, require_coverage
from ctrobust.stages.progress import RunProgress
from ctrobust.stages.subject import Subject, load_subject, resolve_device
from ctrobust.stages.sweep import SweepStage

__all__ = ["resolve_device", "run_eval"]


def run_eval(plan: RunPlan, progress: RunProgress | None = None, store: Store | None = None,
             command: str | None = None, on_provisional: OnProvisional | None = None,
             subject: Subject | None = None) -> RunResult:
    """Run the whole protocol of a resolved plan and return its typed result.

    With a store, every cell is looked up before it is computed and written as soon as it is done,
    and the finished run is recorded with ``command``. ``progress`` (default: none shown) is told
    each stage and the work done inside it. ``on_provisional`` receives the table of both arms after
    each of AutoAttack's attacks (:class:`ctrobust.stages.finals.Provisional`). ``subject``: the model and data
    already loaded for this plan (by :func:`ctrobust.stages.subject.stored_run`); default: loaded here.
    """
    progress = progress or RunProgress("ctrobust eval", disable=True)
    start = time.perf_counter()
    device = resolve_device(plan.device)
    subject = subject or load_subject(plan)
    model = subject.loaded.model.to(device)
    coverage = require_coverage(model, subject, device)
    with frozen_parameters(model):  # attacks need input gradients only
        run = prepare(plan, subject, model, coverage, device, progress, store, start)
        swept = SweepStage(run).run()
        attacked = FinalStage(run, swept, on_provisional).run()
        checked = ChecksStage(run, attacked).run()
        result = run_result(run, swept, attacked, checked, command)
    if store is not None:
        store.put_run(result, replace=run.cache.stale > 0)  # a stored run of another model is replaced
    return result
