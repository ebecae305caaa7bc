"""The whole protocol from Python on an in-memory module, and its results as DataFrames."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch.nn as nn

import ctrobust
from ctrobust.errors import CtrobustError

TINY = dict(n_examples=20, n_select=20, betas="0.8,0.9", attack="apgd-ce", steps=2, select_steps=2)


class TinyNet(nn.Module):
    """A small ReLU network a user might define in a notebook (not a registered name)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.body(x)


def test_run_on_a_module_matches_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    result = ctrobust.run(TinyNet(), dataset="fashion-mnist", threat="linf", store=store, name="tiny",
                          mean=(0.2860,), std=(0.3530,), **TINY)
    assert result.model == "module:tiny" and result.model_source["source"] == "module"
    assert len(result.identity["weights"]) == 20  # the module's weights are part of the run's identity
    cells = result.to_pandas()
    assert list(cells["split"]) == ["select"] * 3 + ["eval"] * 2  # 0.8, 0.9, beta = 1; then base and CT
    assert cells.loc[cells["variant"] == "ct", "robust_correct"].item() == result.ct.counts.robust_correct
    assert cells.loc[cells["chosen"] & (cells["split"] == "select"), "beta"].item() == result.beta

    runs = ctrobust.load_results(store)
    assert len(runs) == 1 and runs.loc[0, "run_id"] == result.run_id
    assert runs.loc[0, "ct_robust_accuracy"] == pytest.approx(result.ct.robust_accuracy)
    assert runs.loc[0, "gain_ci_low"] <= runs.loc[0, "gain_points"] <= runs.loc[0, "gain_ci_high"]
    stored = ctrobust.load_results(store, kind="cells", variant="base")
    assert len(stored) == 1 and stored.loc[0, "robust_correct"] == result.base.counts.robust_correct
    with sqlite3.connect(store) as db:  # the store holds exactly this run and its cells
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        finals = 1 if result.beta == 1.0 else 2  # beta = 1 chosen: CT is the base model, scored once
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 3 + finals

    # The same module again is the same run (cells reused); other weights are another run.
    again = ctrobust.run(TinyNet(), dataset="fashion-mnist", store=store, name="tiny", mean=(0.2860,), std=(0.3530,),
                         **TINY)
    assert again.run_id != result.run_id  # a fresh TinyNet() has other random weights
    assert ctrobust.load_results(store, model="module:tiny").shape[0] == 2


def test_run_refuses_what_it_cannot_use() -> None:
    with pytest.raises(CtrobustError, match="dataset="):
        ctrobust.run(TinyNet(), threat="linf")
    with pytest.raises(CtrobustError, match="Unknown option 'n_exampels'"):
        ctrobust.run(TinyNet(), dataset="fashion-mnist", n_exampels=10)
    with pytest.raises(CtrobustError, match="nn.Module or a model name"):
        ctrobust.run(object(), dataset="fashion-mnist")  # type: ignore[arg-type]


def _training_module() -> nn.Module:
    """The shipped network (without its normalisation) in training mode, one parameter frozen by its owner."""
    from ctrobust.models import load_model

    net = load_model("smallcnn").model.model
    net.train()
    next(net.parameters()).requires_grad_(False)
    return net


def _state(net: nn.Module) -> tuple[list[bool], list[bool]]:
    return [m.training for m in net.modules()], [p.requires_grad for p in net.parameters()]


@pytest.mark.parametrize("ending", ["result", "error", "ctrl-c"])
def test_a_module_is_given_back_in_the_mode_it_came_in(ending: str, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Evaluated in evaluation mode, given back in training mode with its requires_grad flags, whatever the
    run's end: a notebook evaluating between epochs keeps training as it was."""
    from ctrobust.stages import pipeline

    net = _training_module()
    before = _state(net)
    load_subject = pipeline.load_subject
    seen: list[bool] = []

    def watched(plan):  # type: ignore[no-untyped-def]
        subject = load_subject(plan)  # the module as the run evaluates it
        seen.append(any(m.training for m in net.modules()))
        next(net.parameters()).requires_grad_(True)  # as a run's own bookkeeping might
        if ending == "error":
            raise CtrobustError("stopped")
        if ending == "ctrl-c":
            raise KeyboardInterrupt
        return subject

    monkeypatch.setattr(pipeline, "load_subject", watched)
    options = dict(TINY, betas=[0.9], no_base_candidate=True, check_budget=0)
    if ending == "result":
        result = ctrobust.run(net, dataset="fashion-mnist", mean=(0.286,), std=(0.353,), **options)
        assert result.ct.counts.n == 20
    else:
        with pytest.raises(CtrobustError if ending == "error" else KeyboardInterrupt):
            ctrobust.run(net, dataset="fashion-mnist", mean=(0.286,), std=(0.353,), **options)
    assert seen == [False]  # evaluated in evaluation mode
    assert _state(net) == before
    assert sum("came in training mode" in r.getMessage() for r in caplog.records) == 1
