"""What a run attacks: the model and the test data, loaded, checked, and digested into the run's identity.

A stored run or cell is reused only for the same plan *and* the same model behaviour, weights and
data (see :mod:`ctrobust.models.fingerprint`), so the subject is loaded before anything is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ctrobust.ct import curvature_tuned
from ctrobust.ct.arm import BASE_BETA, arm_label
from ctrobust.data import load_test_set, make_splits
from ctrobust.data.registry import canonical_dataset
from ctrobust.data.splits import Splits
from ctrobust.errors import CtrobustError, require_finite
from ctrobust.models import load_model
from ctrobust.models.fingerprint import (
    behaviour_fingerprint,
    is_random_fingerprint,
    split_behaviour,
    tensor_digest,
    weights_digest,
)
from ctrobust.models.registry import LoadedModel
from ctrobust.plan.run_plan import Device, RunPlan
from ctrobust.results.result import RunResult
from ctrobust.results.store import Store
from ctrobust.stages.progress import log


@dataclass
class Subject:
    """The loaded model (on the CPU or wherever a given module lives), the whole test set, the splits,
    and the digests of what will be attacked."""

    loaded: LoadedModel
    x: torch.Tensor
    y: torch.Tensor
    splits: Splits
    n_classes: int
    weights: str
    behaviour: str

    @property
    def randomised(self) -> bool:
        return is_random_fingerprint(self.behaviour)

    def data_digest(self) -> dict[str, str]:
        """The images and labels of both splits, as scored."""
        return {name: tensor_digest(self.x[idx], self.y[idx])
                for name, idx in (("select", self.splits.select_indices), ("eval", self.splits.eval_indices))}


def load_subject(plan: RunPlan) -> Subject:
    """Load the model and data of a plan, check one batch of outputs, and digest both."""
    loaded = load_model(
        plan.model_name or plan.model, plan.dataset, plan.checkpoint, threat=plan.threat, zoo_threat=plan.zoo_threat,
        model_dir=plan.model_dir,
        trust_checkpoint=plan.trust_checkpoint, mean=plan.mean, std=plan.std, module=plan.module,
    )
    x, y = load_test_set(loaded.dataset, plan.data_dir)
    splits = make_splits(len(x), plan.n_examples, plan.n_select, plan.seed, plan.protocol.value)
    n_classes = check_model_outputs(loaded.model, x, y, loaded.dataset)
    behaviour = behaviour_fingerprint(loaded.model, tuple(x.shape[1:]))  # randomised: never reused
    return Subject(loaded, x, y, splits, n_classes, weights_digest(loaded.model), behaviour)


def run_identity(plan: RunPlan, subject: Subject) -> dict[str, Any]:
    """The plan's identity with what it ran on: a run is reused only for the same of all three."""
    return {**plan.identity(), "subject": {"weights": subject.weights, "behaviour": subject.behaviour,
                                           "data": subject.data_digest()}}


def stored_run(plan: RunPlan, store: Store, subject: Subject | None = None) -> tuple[Any, Subject]:
    """The stored run of this plan on this model and data (None if there is none), and the subject loaded
    to tell (hand it to :func:`ctrobust.stages.pipeline.run_eval` so it is not loaded twice)."""
    subject = subject or load_subject(plan)
    if subject.randomised:
        return None, subject
    run = store.get_run(run_identity(plan, subject))
    if run is None:
        return None, subject
    change = made_by_another(run, subject, plan)
    if change is not None:
        log.warning("warning: the stored run %s was made by another model (%s on its images): running it again",
                    run.run_id, change)
        return None, subject
    return run, subject


def made_by_another(run: RunResult, subject: Subject, plan: RunPlan) -> str | None:
    """Why a stored run's numbers are not this model's (None: they are): both arms' clean predictions on the
    evaluation split, seen again, against the run's clean outcomes (the identity's fingerprint sees the model
    on noise images only)."""
    device = resolve_device(plan.device)  # where the run would go: a large model is not run on the CPU
    model = subject.loaded.model.to(device)
    x, labels = subject.x[run.eval_indices], subject.y[run.eval_indices].tolist()
    for arm, beta in (("base", BASE_BETA), ("ct", run.beta)):
        seen = split_behaviour(curvature_tuned(model, beta, impl=plan.ctu.value), x, plan.batch_size, device)
        change = seen.change_from(labels, run.per_example[arm]["clean"], None)
        if change is not None:
            return f"{arm_label(beta, 'prose')}: {change}"
    return None


def resolve_device(name: str | Device) -> torch.device:
    if name == Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == Device.CUDA and not torch.cuda.is_available():
        raise CtrobustError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    return torch.device(str(name))


# Output types whose logits are too coarse for gradient attacks, with their significant decimal digits.
LOW_PRECISION = {torch.float16: 3, torch.bfloat16: 2}


def check_model_outputs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dataset: str) -> int:
    """One batch through the model before any work: its output must be N x classes, finite, and the
    labels must be classes it can predict. Returns the number of classes."""
    expected = canonical_dataset(dataset).num_classes
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = model(x[:8].clone().to(device))
    except Exception as exc:  # noqa: BLE001 - a user's model can raise anything; say so in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CtrobustError(f"the model's forward failed on a batch of {dataset} images: "
                            f"{type(exc).__name__}: {first}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != min(8, len(x)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CtrobustError(f"the model returned {shape} for a batch of {min(8, len(x))} images; expected "
                            f"(batch, {expected}) logits.")
    if out.shape[1] != expected:
        raise CtrobustError(f"the model has {out.shape[1]} outputs but {dataset} has {expected} classes.")
    require_finite(out, f"on clean {dataset} images")
    if out.dtype in LOW_PRECISION:
        log.warning("note: the model's output is %s: its logits carry about %d significant digits, so the gradient "
                    "attacks see a coarse, often flat loss and can overstate robust accuracy; return float32 logits "
                    "(.float() at the end of forward) for an evaluation the attacks can trust",
                    str(out.dtype).removeprefix("torch."), LOW_PRECISION[out.dtype])
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= expected):
        raise CtrobustError(f"the {dataset} labels run from {int(y.min())} to {int(y.max())}, outside the model's "
                            f"{expected} classes: the data files are not {dataset}'s.")
    return expected
