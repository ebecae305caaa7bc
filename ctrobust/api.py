"""The whole protocol from Python: ``ctrobust.run`` on any nn.Module or model name, results as DataFrames;
``ctrobust.evaluate``, one attack on one model.

``run`` is what ``ctrobust eval`` calls: the same options (the fields of ``EvalConfig``, by name),
the same plan, the same store; it returns the typed ``RunResult`` instead of writing files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from ctrobust.errors import CtrobustError
from ctrobust.plan import options
from ctrobust.plan.config import EvalConfig
from ctrobust.plan.options import CONVERTERS, from_python, spoken_to_python

if TYPE_CHECKING:
    from collections.abc import Callable
    from fractions import Fraction

    import pandas as pd
    import torch
    import torch.nn as nn

    from ctrobust.attacks.evaluation import EvalResult
    from ctrobust.attacks.spec import AttackName, AttackSpec
    from ctrobust.datasets import DatasetName
    from ctrobust.plan.run_plan import RunPlan
    from ctrobust.results.result import RunResult
    from ctrobust.results.store import Store
    from ctrobust.stages.finals import Provisional
    from ctrobust.stages.progress import RunProgress
    from ctrobust.threats import ThreatModel

log = logging.getLogger("ctrobust")

CLI_ONLY = {"out", "json", "no_progress", "strict_checks", "executor", "ray_address"}  # files, printing, Ray: eval's


def _check_names(options: dict[str, Any], where: str) -> None:
    """Refuse an option that is not an ``ctrobust eval`` field, or one only the command line uses."""
    unknown = set(options) - set(EvalConfig.__dataclass_fields__) | set(options) & CLI_ONLY
    if unknown:
        raise CtrobustError(f"Unknown option {sorted(unknown)[0]!r} for {where}; the options are those of "
                            "`ctrobust eval` by field name (n_examples, betas, attack, eps, seed, ...).")


def run(model: nn.Module | str, dataset: str | DatasetName | None = None, threat: str | ThreatModel = "linf", *,
        store: Store | str | os.PathLike[str] | None = None, name: str | None = None, command: str | None = None,
        progress: RunProgress | bool = False, on_provisional: Callable[[Provisional], None] | None = None,
        **options: Any) -> RunResult:
    """Choose beta on held-out data, attack base and CT, and return the result (with per-example outcomes,
    the selection curve and the sanity checks).

    ``model``: an ``nn.Module`` taking images in [0, 1] (pass ``mean``/``std`` to normalise inside it,
    and ``dataset``), or a model name as ``ctrobust eval --model`` takes it. ``store``: a results store
    (a path or an open Store) that every cell is looked up in and written to, as ``eval`` does; default:
    none. ``options``: any ``ctrobust eval`` option by its field name, as a Python value
    (``n_examples=200``, ``betas=[0.8, 0.9]``, ``eps=Fraction(8, 255)``, ``attack=AttackName.APGD_CE``,
    ``mean=(0.5,)``, ``device=torch.device("cpu")``; the command line's strings work too), listed below with
    their types; a value of the wrong type raises ``OptionTypeError`` (a ``CtrobustError`` and a
    ``TypeError``) naming the option. ``on_provisional``: called after each of AutoAttack's
    attacks with both arms' robust accuracy so far (an upper bound until the last attack) and the gain,
    a :class:`ctrobust.stages.finals.Provisional` (printable, and shown as a table by a notebook's ``display``).
    """
    module = None if isinstance(model, str) else model
    label = model if isinstance(model, str) else (name or type(model).__name__)
    _check_names(options, "ctrobust.run")
    values = from_python({"dataset": dataset, "threat": threat, **options})
    with module_as_given(module):
        try:
            plan = EvalConfig(model=label, **values).resolve(module=module)
        except CtrobustError as exc:
            raise spoken_to_python(exc) from None
        return run_plan(plan, store=store, progress=progress, command=command, on_provisional=on_provisional)


@contextmanager
def module_as_given(module: Any) -> Iterator[None]:
    """The caller's module is evaluated in evaluation mode (as RobustBench evaluates) and given back as it came:
    every submodule's training flag and every parameter's ``requires_grad``, after a result, an error or Ctrl-C
    alike, so a notebook can evaluate between training epochs. A module that came in training mode is said
    once."""
    if not callable(getattr(module, "modules", None)):
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    if any(training for _, training in modes):
        log.warning("note: the module came in training mode: it is evaluated in evaluation mode (as RobustBench "
                    "evaluates) and given back in training mode")
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: str | ThreatModel,
    eps: float | Fraction | None = None,
    attack: str | AttackName | AttackSpec = "autoattack",
    seed: int = 0,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    dataset: str | DatasetName | None = None,
) -> EvalResult:
    """One attack on one model, from Python (``ctrobust.evaluate``): attack ``model`` on (x, y), images in
    [0, 1], and re-check every success before counting it.

    ``threat``: a name or a ``ThreatModel``; ``eps``: a number (``Fraction(8, 255)`` too), or None for the
    standard eps of ``dataset`` (a name or a ``DatasetName``) under the threat; ``attack``: a name, an
    ``AttackName`` or an ``AttackSpec``. The model runs in eval mode on ``device`` (a name or a
    ``torch.device``; default: where its parameters are). A value of the wrong type raises
    ``OptionTypeError`` naming the argument.
    """
    import torch

    from ctrobust.attacks.evaluation import attack_and_check
    from ctrobust.attacks.spec import AttackSpec, as_spec
    from ctrobust.threats import ThreatModel, check_eps, default_eps, parse_threat

    resolved = threat if isinstance(threat, ThreatModel) else parse_threat(
        options.choice("a threat name (str) or a ThreatModel")("threat", threat))
    value: float | None = options.real()("eps", eps)
    seed, batch_size = options.integer("seed", seed), options.integer("batch_size", batch_size)
    dataset = options.choice("a dataset name (str) or a DatasetName")("dataset", dataset)
    if not isinstance(attack, AttackSpec):
        attack = options.choice("an attack name (str), an AttackName or an AttackSpec")("attack", attack)
    if device is not None and not isinstance(device, torch.device):
        device = options.device("device", device)
    if value is None:
        if dataset is None:
            raise CtrobustError("Pass `eps`, or `dataset` to use its standard eps.")
        value = default_eps(dataset, resolved)
    return attack_and_check(model, x, y, resolved, check_eps(value, resolved), as_spec(attack), seed, batch_size,
                            device)


def _options_doc() -> str:
    """The options' section of ``ctrobust.run``'s docstring: name, Python type and the CLI's help for each."""
    skip = CLI_ONLY | {"model", "store"}  # the command line's alone, or run's own parameters
    lines = ["", "    Options (keyword arguments; the ``ctrobust eval`` flag of the same name, dashes for underscores):", ""]
    for f in fields(EvalConfig):
        if f.name in skip:
            continue
        default = "" if f.default is None else f" = {f.default!r}"
        lines.append(f"    - ``{f.name}`` ({CONVERTERS[f.name][1]}{default}): {f.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"


run.__doc__ = (run.__doc__ or "") + _options_doc()


def run_plan(plan: RunPlan, *, store: Store | str | os.PathLike[str] | None = None,
             progress: RunProgress | bool = False, command: str | None = None,
             on_provisional: Callable[[Provisional], None] | None = None) -> RunResult:
    """Run a plan resolved once (``EvalConfig.resolve()``, as ``ctrobust eval`` and :func:`run` build it):
    nothing in it is parsed again. ``store``, ``progress``, ``command`` and ``on_provisional`` as for :func:`run`."""
    from ctrobust.results.store import Store, open_store
    from ctrobust.stages.pipeline import run_eval
    from ctrobust.stages.progress import RunProgress

    bar = progress if isinstance(progress, RunProgress) else RunProgress("ctrobust.run", disable=not progress)
    opened = open_store(store) if store is not None and not isinstance(store, Store) else nullcontext(store)
    with opened as st, (bar if bar is not progress else nullcontext(bar)):
        return run_eval(plan, progress=bar, store=st, command=command, on_provisional=on_provisional)


def reproduce(config: str | os.PathLike[str] = "small", *, store: Store | str | os.PathLike[str] | None = None,
              progress: bool = False, **overrides: Any) -> list[RunResult]:
    """Run a grid config (a TOML file, or a shipped one: ``small``, ``paper``) as ``ctrobust reproduce`` does,
    here, and return its runs; runs already in ``store`` are read back, not re-run. ``overrides``: options that
    replace the config's for every unit, as Python values (``n_examples=50, betas=[0.8, 0.9]``). A unit that
    fails raises ``CtrobustError`` naming it (the others are kept in the store). ``ctrobust.paper_table(runs)``
    gives the paper's table."""
    from ctrobust.executors import Executor, Progress, run_grid
    from ctrobust.plan.reproduce import load_config
    from ctrobust.results.store import Store, open_store
    from ctrobust.stages.progress import bar_class

    _check_names(overrides, "ctrobust.reproduce")
    try:
        grid = load_config(os.fspath(config), from_python(overrides))
    except CtrobustError as exc:
        raise spoken_to_python(exc) from None
    opened = open_store(store) if not isinstance(store, Store) else nullcontext(store)
    with opened as st, bar_class()(total=len(grid.units), desc=f"reproduce {grid.name}", unit="run",
                            disable=not progress) as bar:

        def on_progress(p: Progress) -> None:
            bar.n = p.done + p.failed
            bar.refresh()

        outcome = run_grid(grid, st, Executor.LOCAL, on_progress=on_progress)
    if outcome.failures:
        label, error = outcome.failures[0]
        raise CtrobustError(f"unit {label} failed: {error} ({len(outcome.failures)} of {len(grid.units)} failed)")
    return outcome.results


def load_results(store: Store | str | os.PathLike[str] | None = None, kind: str = "runs",
                 **filters: Any) -> pd.DataFrame:
    """The runs (one row each) or cells (one row per cell of every run) of a store, as a DataFrame.

    ``filters``: column=value pairs that rows must match (``model="smallcnn"``, ``threat="Linf"``, ``seed=0``).
    """
    import pandas as pd

    from ctrobust.report.tables import runs_frame
    from ctrobust.results.store import Store, existing_store

    if kind not in ("runs", "cells"):
        raise CtrobustError(f"Expected kind 'runs' or 'cells', but got {kind!r}.")
    opened = existing_store(store) if not isinstance(store, Store) else nullcontext(store)
    with opened as st:
        runs = st.runs()
    frame = runs_frame(runs) if kind == "runs" else pd.concat([r.to_pandas() for r in runs], ignore_index=True) \
        if runs else pd.DataFrame()
    for column, value in filters.items():
        if column not in frame.columns:
            raise CtrobustError(f"No column {column!r} to filter on; columns: {', '.join(frame.columns)}.")
        frame = frame[frame[column] == value]
    return frame.reset_index(drop=True)
