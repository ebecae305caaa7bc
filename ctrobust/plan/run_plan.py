"""RunPlan: the options of one run, resolved and checked once, as a frozen typed value.

``EvalConfig.resolve()`` (the CLI, ``reproduce`` and the Python API all go through it) turns the
options as typed into this plan: the threat model as an enum, eps with its dataset default
applied, the beta grid as floats, both attack specs, the dataset the model implies. Nothing
downstream parses or re-checks an option.

A run's identity is derived from the plan's fields: every field is part of it unless its metadata
says ``identity=False`` (where files live, the device, the CT unit's implementation). A new field
therefore changes the identity unless someone decides it cannot change the numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any

from ctrobust.attacks.spec import AttackSpec
from ctrobust.datasets import DatasetName
from ctrobust.errors import CtrobustError
from ctrobust.models.source import ModelName, ModelSource
from ctrobust.threats import ThreatModel

# The checks' work as a share of the final attacks' (checks/budget.py); measured at under a tenth of the run's
# time in benchmarks/RESULTS.md.
DEFAULT_CHECK_SHARE = 0.06  # affords every check at full size on the default run (tests/test_check_budget.py)


class Protocol(StrEnum):
    """How beta is chosen: on a held-out split (honest) or on the evaluation split (the paper's code)."""

    HELDOUT = "heldout"
    PAPER = "paper"


class SweepMode(StrEnum):
    """How the candidates are scored on the selection split: all on all of it, or by successive halving."""

    GRID = "grid"
    HALVING = "halving"


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Executor(StrEnum):
    """Where runs execute; ``ctrobust/executors`` holds one runner per value."""

    LOCAL = "local"
    RAY = "ray"


class CtuImpl(StrEnum):
    AUTO = "auto"
    FUSED = "fused"
    EAGER = "eager"


CTU_ENV = "CTROBUST_CTU"


def resolve_ctu(choice: CtuImpl | str = CtuImpl.AUTO) -> CtuImpl:
    """The CT unit a run uses: auto is $CTROBUST_CTU when set (fused or eager), else fused. The one place the
    environment chooses it; ``ct/`` itself takes the resolved name."""
    try:
        chosen = CtuImpl(str(choice).strip().lower())
    except ValueError:
        raise CtrobustError(f"Expected the CT unit implementation (--ctu) to be fused, eager or auto, but got "
                            f"{choice!r}.") from None
    if chosen is not CtuImpl.AUTO:
        return chosen
    raw = os.environ.get(CTU_ENV, "fused").strip().lower()
    if raw not in (CtuImpl.FUSED, CtuImpl.EAGER):
        raise CtrobustError(f"Expected ${CTU_ENV} (the CT unit implementation) to be fused or eager, but got {raw!r}.")
    return CtuImpl(raw)


def _not_identity() -> dict[str, Any]:
    return {"identity": False}


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, resolved. Build it with ``EvalConfig.resolve()``."""

    model: str
    model_source: ModelSource
    dataset: DatasetName
    threat: ThreatModel
    eps: float | None  # None for corruptions
    final_attack: AttackSpec | None  # None for corruptions: no attack runs
    select_attack: AttackSpec | None
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    betas: tuple[float, ...]
    sweep: SweepMode
    base_candidate: bool
    protocol: Protocol
    n_examples: int
    n_select: int
    seed: int
    batch_size: int
    check_budget: float = DEFAULT_CHECK_SHARE  # the checks' work, as a share of the final attacks' (checks/budget.py)
    checkpoint: str | None = None
    zoo_threat: ThreatModel | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    model_dir: str | None = field(default=None, metadata=_not_identity())
    data_dir: str | None = field(default=None, metadata=_not_identity())
    trust_checkpoint: bool = field(default=False, metadata=_not_identity())
    device: Device = field(default=Device.AUTO, metadata=_not_identity())
    ctu: CtuImpl = field(default=CtuImpl.AUTO, metadata=_not_identity())
    # Betas per batched pass of the sweep (None: what the device holds); the numbers do not depend on it.
    betas_per_pass: int | None = field(default=None, metadata=_not_identity())
    # The model's name as parsed once in resolve() (its source and the name that source knows): the loader reads
    # it, not the name again; ``model`` and ``model_source`` carry it into the identity.
    model_name: ModelName | None = field(default=None, metadata=_not_identity())
    # A model given as an object (ctrobust.run): its weights' digest is part of the identity, the object is not.
    weights: str | None = None
    module: Any = field(default=None, metadata=_not_identity(), compare=False, repr=False)

    @property
    def candidates(self) -> tuple[float, ...]:
        """The betas tried on the selection split: the grid, and beta = 1 when the original model competes."""
        return tuple(sorted(set(self.betas) | {1.0})) if self.base_candidate else self.betas

    @property
    def optimistic(self) -> bool:
        return self.protocol is Protocol.PAPER

    @property
    def label(self) -> str:
        return f"{self.model} {self.dataset} {self.threat.cli_name} seed {self.seed} {self.protocol}"

    def identity(self) -> dict[str, Any]:
        """The JSON-able values of every identity field: two plans with the same identity give the same numbers."""
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self) if f.metadata.get("identity", True)}


def jsonable(value: Any) -> Any:
    """Enums as their values, specs as dicts, tuples as lists: the form stored and hashed."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, AttackSpec):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    return value
