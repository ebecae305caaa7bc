"""RunResult: what one run measured, as a typed value; result.json and the store hold its ``to_dict()``.

Accuracies are kept as exact counts (k of n); every fraction is derived from them, so a stored
number never drifts (no float32 ``0.3499999940395355``). The store serialises a RunResult, and
the report, the tables, the figures and the leaderboard read RunResults back from it. The JSON
layout is documented in docs/results.md and docs/result.schema.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from ctrobust.cell import Counts
from ctrobust.plan.run_plan import Protocol
from ctrobust.results.evidence import SanityReport
from ctrobust.results.stats import PairedGain
from ctrobust.results.uncertainty import SelectionFlags, flags_from_dict, run_gain
from ctrobust.threats import ThreatModel

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


RESULT_SCHEMA_VERSION = 4  # 2 added identity, gain, flags, candidates, counts; 3: counts are the numbers;
# 4: the evidence that the attack worked (sanity_checks: attack_evidence, reference, incomplete, gradients, binarization)
OPTIMISTIC_NOTE = (
    "OPTIMISTIC: protocol 'paper' chose beta on the evaluation split itself and clipped CT up to the base; "
    "these numbers are biased upward (see docs/protocol.md, fault 1)."
)


SETTINGS_KEYS = ("attack_config", "select_attack_config", "corruptions", "severities", "corruption_data", "execution")
"""The keys of ``RunResult.settings``, written at result.json's top level (each one is in the schema)."""


@dataclass(frozen=True)
class ArmResult:
    """One model on the evaluation split: base (beta = 1) or CT at the chosen beta.

    ``details``: what the scorer recorded besides the counts (seconds, rejected adversarial examples,
    AutoAttack's accuracy after each attack, per-cell corruption accuracy).
    """

    beta: float
    counts: Counts
    details: dict[str, Any] = field(default_factory=dict)
    clipped: bool = False  # protocol paper: CT was worse than the base and reports the base instead
    clipped_from: float | None = None  # CT's own robust accuracy before clipping
    white_box_correct: int | None = None  # CT: robust under its own attack, before transfer is counted

    @property
    def clean_accuracy(self) -> float:
        return self.counts.clean_accuracy

    @property
    def robust_accuracy(self) -> float:
        return self.counts.robust_accuracy

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.details, "beta": self.beta, "clean_accuracy": self.clean_accuracy,
                               "robust_accuracy": self.robust_accuracy, "n": self.counts.n,
                               "counts": self.counts.to_dict(), "clipped": self.clipped}
        if self.clipped_from is not None:
            out["clipped_to_base_from"] = self.clipped_from
        if self.white_box_correct is not None:
            out["robust_accuracy_white_box"] = self.white_box_correct / self.counts.n if self.counts.n else 0.0
            out["counts"]["robust_correct_white_box"] = self.white_box_correct
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], per_example: Mapping[str, Sequence[int]], beta: float) -> ArmResult:
        known = {"beta", "clean_accuracy", "robust_accuracy", "n", "counts", "clipped", "clipped_to_base_from",
                 "robust_accuracy_white_box"}
        raw = data.get("counts")
        if raw and "robust_correct" in raw:
            counts = Counts(int(raw["n"]), int(raw["clean_correct"]), int(raw["robust_correct"]), int(raw.get("cells", 1)))
        else:  # stored before schema 3: the counts come from the per-example outcomes
            counts = Counts.of(per_example)
        white = (raw or {}).get("robust_correct_white_box")
        return cls(float(data.get("beta", beta)), counts, {k: v for k, v in data.items() if k not in known},
                   bool(data.get("clipped", False)), data.get("clipped_to_base_from"),
                   int(white) if white is not None else None)


@dataclass(frozen=True)
class RunResult:
    """Everything one run measured and how; ``to_dict()`` is result.json."""

    run_id: str
    identity: dict[str, Any]
    model: str
    dataset: str
    threat: ThreatModel
    eps: float | None
    attack: str  # the final attack's label, e.g. autoattack-standard
    select_attack: str
    seed: int
    protocol: Protocol
    n_examples: int
    n_select: int
    betas: list[float]
    candidates: list[float]
    base_candidate: bool
    select_curve: dict[float, float]  # robust accuracy per candidate beta, selection split
    select_clean: dict[float, float]
    beta: float
    base: ArmResult
    ct: ArmResult
    gain: PairedGain
    flags: SelectionFlags
    per_example: dict[str, dict[str, list[int]]]  # {"base": ..., "ct": ...}: CT's own, before any clipping
    eval_indices: list[int]
    select_indices: list[int]
    weights_digest: str
    model_source: dict[str, Any]
    provenance: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)  # attack configs, corruption lists
    sanity: SanityReport | None = None
    ct_coverage: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 0
    ctu: str = ""
    wall_seconds: float = 0.0
    cells_computed: int = 0
    cells_reused: int = 0
    command: str | None = None
    sweep: dict[str, Any] = field(default_factory=dict)  # mode, betas per pass, rungs (points and curve each)
    final_cells: dict[str, str] = field(default_factory=dict)  # the store keys of the final cells, by arm
    schema_version: int = RESULT_SCHEMA_VERSION

    @property
    def optimistic(self) -> bool:
        return self.protocol is Protocol.PAPER

    @property
    def note(self) -> str | None:
        return OPTIMISTIC_NOTE if self.optimistic else None

    @property
    def label(self) -> str:
        """The model as a reader tells it apart: its name, and the weights file's name when one was given (two
        checkpoints of one architecture are two models on a leaderboard)."""
        checkpoint = self.identity.get("checkpoint")
        return f"{self.model} ({PurePath(str(checkpoint)).stem})" if checkpoint else self.model

    @property
    def gain_points(self) -> float:
        return self.gain.gain_points

    @property
    def binarization(self) -> dict[str, str]:
        """The binarization test's verdict per arm (base, ct); empty where it did not run (corruptions, older results)."""
        if self.sanity is None or self.sanity.binarization is None:
            return {}
        return {name: arm.verdict for name, arm in self.sanity.binarization.arms.items()}

    @property
    def corruptions(self) -> list[str]:
        return list(self.settings.get("corruptions") or [])

    @property
    def severities(self) -> list[int]:
        return list(self.settings.get("severities") or [])

    @property
    def setting_key(self) -> str:
        """Runs with the same key differ in the seed alone: the only runs a table may pool."""
        from ctrobust.identity import identity_key

        identity = {k: v for k, v in self.identity.items() if k != "seed"}
        subject = identity.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("data"), dict):  # selection points follow the seed
            identity["subject"] = {**subject, "data": {k: v for k, v in subject["data"].items() if k != "select"}}
        return identity_key(identity)

    def to_pandas(self) -> pd.DataFrame:
        """A tidy frame, one row per cell: every candidate on the selection split (each round of a
        halving sweep), then base and CT on the evaluation split, with the run's settings on each row."""
        import pandas as pd

        common = {"run_id": self.run_id, "model": self.model, "dataset": self.dataset, "threat": self.threat.value,
                  "eps": self.eps, "protocol": self.protocol.value, "seed": self.seed}
        rows: list[dict[str, Any]] = []
        rungs = self.sweep.get("rungs") or [{"n_points": self.n_select, "curve": self.select_curve}]
        for rung in rungs:
            last = rung is rungs[-1]
            for beta, acc in sorted((float(b), float(a)) for b, a in rung["curve"].items()):
                rows.append({**common, "split": "select", "variant": "candidate", "attack": self.select_attack,
                             "beta": beta, "n": int(rung["n_points"]), "robust_accuracy": acc,
                             "clean_accuracy": self.select_clean.get(beta) if last else None, "chosen":
                             last and beta == self.beta})
        for variant, arm in (("base", self.base), ("ct", self.ct)):
            rows.append({**common, "split": "eval", "variant": variant, "attack": self.attack, "beta": arm.beta,
                         "n": arm.counts.n, "robust_accuracy": arm.robust_accuracy,
                         "clean_accuracy": arm.clean_accuracy, "chosen": variant == "ct",
                         "clean_correct": arm.counts.clean_correct, "robust_correct": arm.counts.robust_correct,
                         "cells": arm.counts.cells})
        frame = pd.DataFrame(rows)
        for column in ("clean_correct", "robust_correct", "cells"):  # counts: integers, missing on sweep rows
            frame[column] = frame[column].astype("Int64")
        return frame

    def __str__(self) -> str:
        """The summary the terminal prints: accuracies with intervals, beta, gain with CI and McNemar, checks."""
        from ctrobust.report.run_output import summary_table

        return summary_table(self)

    def _repr_html_(self) -> str:
        """A notebook's display: the same summary as an HTML table."""
        from ctrobust.report.run_output import summary_html

        return summary_html(self)

    def plot(self) -> Figure:
        """Accuracy against beta (the selection curve with its band, base and CT with their intervals, the
        chosen beta), as a matplotlib Figure; a notebook shows it, ``.savefig(path)`` writes it."""
        from ctrobust.report.figures import beta_plot, shown_inline

        return shown_inline(beta_plot(self))

    def with_command(self, command: str | None) -> RunResult:
        return replace(self, command=command)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "model": self.model,
            "dataset": self.dataset,
            "threat": self.threat.value,
            "eps": self.eps,
            **self.settings,
            "attack": self.attack,
            "select_attack": self.select_attack,
            "seed": self.seed,
            "protocol": self.protocol.value,
            "optimistic": self.optimistic,
            "note": self.note,
            "n_examples": self.n_examples,
            "n_select": self.n_select,
            "betas": self.betas,
            "base_candidate": self.base_candidate,
            "candidates": self.candidates,
            "select_curve": {repr(b): acc for b, acc in self.select_curve.items()},  # exact: repr round-trips
            "select_clean": {repr(b): acc for b, acc in self.select_clean.items()},
            "sweep": self.sweep,
            "beta": self.beta,
            "base": self.base.to_dict(),
            "ct": self.ct.to_dict(),
            "gain_points": self.gain_points,
            "gain": self.gain.to_dict(),
            "sanity_checks": self.sanity.to_dict() if self.sanity is not None else None,
            "selection_flags": self.flags.to_dict(),
            "identity": self.identity,
            "command": self.command,
            "per_example": self.per_example,
            "eval_indices": self.eval_indices,
            "select_indices": self.select_indices,
            "ct_coverage": self.ct_coverage,
            "weights_digest": self.weights_digest,
            "model_source": self.model_source,
            "batch_size": self.batch_size,
            "ctu": self.ctu,
            "wall_seconds": self.wall_seconds,
            "cells": {"computed": self.cells_computed, "reused": self.cells_reused},
            "final_cells": self.final_cells,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """A stored result (schema 1 to 4) back as a RunResult; older ones get their counts from per-example data."""

        threat = ThreatModel(data["threat"])
        per_example = {k: dict(v) for k, v in data["per_example"].items()}
        beta = float(data["beta"])
        base = ArmResult.from_dict(data["base"], per_example["base"], 1.0)
        ct_outcomes = per_example["base"] if data["ct"].get("clipped") else per_example["ct"]
        ct = ArmResult.from_dict(data["ct"], ct_outcomes, beta)
        gain = (PairedGain.from_dict(data["gain"]) if "gain" in data
                else run_gain(threat, per_example["base"], ct_outcomes))
        settings = {k: data[k] for k in SETTINGS_KEYS if k in data}
        checks = data.get("sanity_checks")
        sanity = SanityReport.from_dict(checks) if checks else None
        curve = {float(b): float(a) for b, a in data["select_curve"].items()}
        cells = data.get("cells") or {}
        return cls(
            run_id=str(data.get("run_id", "")), identity=dict(data.get("identity") or {}), model=data["model"],
            dataset=data["dataset"], threat=threat, eps=data.get("eps"), attack=data["attack"],
            select_attack=data.get("select_attack", data["attack"]), seed=int(data["seed"]),
            protocol=Protocol(data["protocol"]), n_examples=int(data["n_examples"]), n_select=int(data["n_select"]),
            betas=[float(b) for b in data.get("betas", curve)], candidates=[float(b) for b in data.get("candidates", curve)],
            base_candidate=bool(data.get("base_candidate", False)), select_curve=curve,
            select_clean={float(b): float(a) for b, a in (data.get("select_clean") or {}).items()},
            beta=beta, base=base, ct=ct,
            gain=gain, flags=flags_from_dict(data.get("selection_flags"), curve, beta, int(data["n_select"])),
            per_example=per_example, eval_indices=list(data.get("eval_indices") or []),
            select_indices=list(data.get("select_indices") or []),
            weights_digest=str(data.get("weights_digest", "")), model_source=dict(data.get("model_source") or {}),
            provenance=dict(data.get("provenance") or {}), settings=settings, sanity=sanity,
            ct_coverage=dict(data.get("ct_coverage") or {}), batch_size=int(data.get("batch_size", 0)),
            ctu=str(data.get("ctu", "")), wall_seconds=float(data.get("wall_seconds", 0.0)),
            cells_computed=int(cells.get("computed", 0)), cells_reused=int(cells.get("reused", 0)),
            command=data.get("command"), sweep=dict(data.get("sweep") or {}),
            final_cells={str(k): str(v) for k, v in (data.get("final_cells") or {}).items()},
            schema_version=int(data.get("schema_version", 1)),
        )
