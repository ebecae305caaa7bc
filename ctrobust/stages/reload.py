"""The model and data of a stored run, loaded again, and checked to be the ones the run attacked."""

from __future__ import annotations

from typing import Any

import torch

from ctrobust.ct import curvature_tuned
from ctrobust.data import load_test_set
from ctrobust.errors import CtrobustError
from ctrobust.models import load_model
from ctrobust.models.fingerprint import weights_digest
from ctrobust.plan.run_plan import resolve_ctu
from ctrobust.results.result import RunResult
from ctrobust.threats import ThreatModel


def reload_run(run: RunResult, data_dir: str | None, model_dir: str | None, device: torch.device
               ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CT over the run's model (at the run's beta), and its evaluation and selection points.

    Refused when the weights differ from the run's (an edited checkpoint) or the model was an
    in-memory module, which cannot be loaded again from its name.
    """
    identity = run.identity
    if run.model_source.get("source") == "module":
        raise CtrobustError(f"run {run.run_id} evaluated an in-memory module ({run.model}): it cannot be loaded again "
                            "from the store; audit it from Python with the same module.")
    zoo_threat = identity.get("zoo_threat")
    loaded = load_model(run.model, run.dataset, identity.get("checkpoint"), threat=run.threat,
                        zoo_threat=ThreatModel(zoo_threat) if zoo_threat else None, model_dir=model_dir,
                        trust_checkpoint=bool(identity.get("trust_checkpoint", False)),
                        mean=identity.get("mean"), std=identity.get("std"))
    if run.weights_digest and weights_digest(loaded.model) != run.weights_digest:
        raise CtrobustError(f"the weights of {run.model} differ from those run {run.run_id} attacked: the audit would "
                            "test another model. Re-run `ctrobust eval` first.")
    x, y = load_test_set(run.dataset, data_dir)
    ct = curvature_tuned(loaded.model.to(device), run.beta, impl=resolve_ctu().value)
    return ct, x[run.eval_indices], y[run.eval_indices], x[run.select_indices], y[run.select_indices]
