"""A stored cell is reused only for the model that runs now, seen on the cell's own images (issue 37 item 1).

The behaviour fingerprint sees a model on noise images; an edit that acts only on real images keeps it (and
the run's identity). Each edit below is reached by no noise image: before the fix the second run printed the
first model's numbers with every cell reused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import ctrobust
from ctrobust.models import load_model
from ctrobust.models.fingerprint import SplitBehaviour, behaviour_fingerprint, split_behaviour

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_reuse_checked")

OPTIONS = {"n_examples": 20, "n_select": 20, "betas": "0.9", "no_base_candidate": True, "attack": "apgd-ce",
           "steps": 2, "select_steps": 2, "check_budget": 0}
Edit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, logits) -> logits


class Editable(nn.Module):
    """The shipped CNN with an optional edit of its logits (same weights, same state dict)."""

    def __init__(self, edit: Edit | None = None) -> None:
        super().__init__()
        self.net = load_model("smallcnn").model
        self.edit = edit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return logits if self.edit is None else self.edit(x, logits)


def _mostly_zero(x: torch.Tensor) -> torch.Tensor:
    """Images with at least 30% exact zeros (padded Fashion-MNIST has them, uniform noise never)."""
    return (x == 0).float().flatten(1).mean(1) >= 0.3


def _has_white(x: torch.Tensor) -> torch.Tensor:
    """Images with a pixel at exactly 1.0 (noise drawn from [0, 1) never has one)."""
    return (x == 1).flatten(1).any(1)


def _zero_border(x: torch.Tensor) -> torch.Tensor:
    """Images whose first row is all exact zeros (the padding of 28x28 images to 32x32)."""
    return (x[:, :, 0, :] == 0).flatten(1).all(1)


def _swap_first_two(where: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
    def edit(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        swapped = logits[:, [1, 0, *range(2, logits.shape[1])]]
        return torch.where(where(x)[:, None], swapped, logits)
    return edit


def _raise_class(cls: int, by: float) -> Edit:
    def edit(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        bump = torch.zeros_like(logits)
        bump[:, cls] = by
        return torch.where(_mostly_zero(x)[:, None], logits + bump, logits)
    return edit


@pytest.fixture(scope="module")
def first_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ctrobust.RunResult]:
    """A store holding one run of the unedited model (its cells: selection at 0.9, both final arms)."""
    store = tmp_path_factory.mktemp("reuse") / "store.sqlite"
    result = ctrobust.run(Editable(), dataset="fashion-mnist", store=store, name="mine", **OPTIONS)
    assert result.cells_computed == 3
    return store, result


def _run_edited(first_store: tuple[Path, ctrobust.RunResult], tmp_path: Path, edit: Edit,
                caplog: pytest.LogCaptureFixture) -> tuple[ctrobust.RunResult, list[str]]:
    store = tmp_path / "store.sqlite"
    shutil.copy(first_store[0], store)
    edited = Editable(edit)
    assert behaviour_fingerprint(edited, (1, 32, 32)) == behaviour_fingerprint(Editable(), (1, 32, 32))
    with caplog.at_level(logging.WARNING, logger="ctrobust"):
        result = ctrobust.run(edited, dataset="fashion-mnist", store=store, name="mine", **OPTIONS)
    assert result.run_id == first_store[1].run_id  # the identity cannot tell them apart: the check must
    return result, [r.getMessage() for r in caplog.records if "made by another model" in r.getMessage()]


def _clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


@pytest.mark.slow
@pytest.mark.parametrize("trigger", [_mostly_zero, _has_white, _zero_border], ids=["zeros", "white", "border"])
def test_an_edit_noise_never_reaches_recomputes_every_cell(
        trigger: Callable[[torch.Tensor], torch.Tensor], first_store: tuple[Path, ctrobust.RunResult],
        tmp_path: Path, caplog: pytest.LogCaptureFixture, fmnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    edit = _swap_first_two(trigger)
    result, lines = _run_edited(first_store, tmp_path, edit, caplog)
    assert result.cells_reused == 0 and result.cells_computed == 3
    assert len(lines) == 3, lines  # one line per stale cell: the selection cell and both final arms
    assert all(line.startswith("warning: the stored ") and "recomputing it" in line for line in lines)
    x, y = fmnist_test[0][result.eval_indices], fmnist_test[1][result.eval_indices]
    assert result.base.clean_accuracy == pytest.approx(_clean_accuracy(Editable(edit), x, y))
    assert result.base.clean_accuracy != pytest.approx(first_store[1].base.clean_accuracy)
    from ctrobust.results.store import Store

    with Store(tmp_path / "store.sqlite") as store:  # the run row of the old model is replaced, not kept
        (stored,) = store.runs()
    assert stored.base.counts == result.base.counts and stored.per_example == result.per_example


@pytest.mark.slow
def test_one_class_logit_raised_on_real_images_is_another_model(
        first_store: tuple[Path, ctrobust.RunResult], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bump of one class's logit small enough to change no prediction is still seen (its mean logit)."""
    result, lines = _run_edited(first_store, tmp_path, _raise_class(3, 0.05), caplog)
    assert result.cells_reused == 0, lines
    assert lines and all("mean logit of class 3" in line for line in lines), lines


@pytest.mark.slow
def test_an_edit_on_the_selection_split_only_recomputes_its_cell(
        first_store: tuple[Path, ctrobust.RunResult], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        fmnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    chosen = fmnist_test[0][first_store[1].select_indices]

    def on_selection(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1)[:, None, :] == chosen.flatten(1)[None].to(x.device)).all(2).any(1)

    result, lines = _run_edited(first_store, tmp_path, _swap_first_two(on_selection), caplog)
    assert (result.cells_computed, result.cells_reused) == (1, 2)
    assert len(lines) == 1 and "selection cell of CT" in lines[0], lines


@pytest.mark.slow
def test_the_same_model_reuses_every_cell(first_store: tuple[Path, ctrobust.RunResult], tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    result, lines = _run_edited(first_store, tmp_path, lambda x, logits: logits, caplog)
    assert (result.cells_computed, result.cells_reused, lines) == (0, 3, [])
    assert result.base.counts == first_store[1].base.counts and result.ct.counts == first_store[1].ct.counts


def test_split_behaviour_names_what_changed() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    x, y = torch.rand(30, 3, 2, 2), torch.randint(0, 4, (30,))
    now = split_behaviour(net, x, 7, torch.device("cpu"))
    clean = [int(p == t) for p, t in zip(now.predictions, y.tolist())]
    assert now.change_from(y.tolist(), clean, now) is None
    assert now.change_from(y.tolist(), clean, split_behaviour(net, x, 30, torch.device("cpu"))) is None  # batches
    assert now.change_from(y.tolist(), clean, None) is None  # a cell of an older ctrobust: its clean outcomes
    flipped = [1 - clean[0], *clean[1:]]
    assert now.change_from(y.tolist(), flipped, None) == "the model's clean predictions differ on 1 point of 30"
    other = SplitBehaviour(now.predictions, [m + (0.5 if c == 2 else 0.0) for c, m in enumerate(now.class_means)],
                           now.scale)
    assert "mean logit of class 2" in str(now.change_from(y.tolist(), clean, other))
    assert SplitBehaviour.from_dict(now.to_dict()) == now
    assert SplitBehaviour.from_dict({"predictions": "x"}) is None and SplitBehaviour.from_dict(None) is None


@pytest.mark.slow
def test_a_run_of_reused_cells_reuses_its_stored_checks(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 37 item 8: every cell reused as made by this model, the same identity: the stored checks, not a
    second run of them (which would find the same)."""
    from ctrobust.stages import checking

    options = {**OPTIONS, "check_budget": 0.05}
    store = tmp_path / "store.sqlite"
    first = ctrobust.run(Editable(), dataset="fashion-mnist", store=store, name="mine", **options)
    assert first.sanity is not None and first.sanity.transfer is not None

    def not_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checks ran again")

    monkeypatch.setattr(checking, "run_sanity_checks", not_again)
    with caplog.at_level(logging.INFO, logger="ctrobust"):
        again = ctrobust.run(Editable(), dataset="fashion-mnist", store=store, name="mine", **options)
    assert again.cells_computed == 0
    assert any(r.getMessage().startswith("checks reused") for r in caplog.records)
    assert again.sanity is not None and again.sanity.to_dict() == first.sanity.to_dict()
    assert again.per_example == first.per_example and again.gain == first.gain
    from ctrobust.stages import cells

    made_here = cells.provenance
    monkeypatch.setattr(cells, "provenance", lambda device: {**made_here(device), "git_commit": "another"})
    with pytest.raises(AssertionError, match="the checks ran again"):  # other checks' code: checked again
        ctrobust.run(Editable(), dataset="fashion-mnist", store=store, name="mine", **options)
    monkeypatch.setattr(cells, "provenance", made_here)
    with pytest.raises(AssertionError, match="the checks ran again"):  # another model: checked again
        ctrobust.run(Editable(_swap_first_two(_mostly_zero)), dataset="fashion-mnist", store=store, name="mine",
                     **options)


def _plan_for(module: nn.Module):  # type: ignore[no-untyped-def]
    from ctrobust.plan.config import EvalConfig
    from ctrobust.plan.options import from_python

    return EvalConfig(model="mine", **from_python({"dataset": "fashion-mnist", **OPTIONS})).resolve(module=module)


@pytest.mark.slow
def test_a_stored_run_of_another_model_is_not_reused(first_store: tuple[Path, ctrobust.RunResult],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """``reproduce`` takes a stored run whole: it too is checked against the model that runs now."""
    from ctrobust.results.store import Store
    from ctrobust.stages.subject import stored_run

    with Store(first_store[0]) as store:
        same, _ = stored_run(_plan_for(Editable()), store)
        assert same is not None and same.run_id == first_store[1].run_id
        with caplog.at_level(logging.WARNING, logger="ctrobust"):
            other, _ = stored_run(_plan_for(Editable(_swap_first_two(_zero_border))), store)
    assert other is None
    assert [r.getMessage() for r in caplog.records if "stored run" in r.getMessage()] == [
        f"warning: the stored run {same.run_id} was made by another model (the original model: the model's clean "
        f"predictions differ on {_differ(same)} of 20 on its images): running it again"]


def _differ(run: ctrobust.RunResult) -> str:
    x, y = _eval_points(run)
    edited = Editable(_swap_first_two(_zero_border))
    with torch.no_grad():
        now = (edited(x).argmax(1) == y).int().tolist()
    k = sum(a != b for a, b in zip(now, run.per_example["base"]["clean"]))
    return f"{k} point" if k == 1 else f"{k} points"


def _eval_points(run: ctrobust.RunResult) -> tuple[torch.Tensor, torch.Tensor]:
    from ctrobust.data import load_test_set

    x, y = load_test_set("fashion-mnist")
    return x[run.eval_indices], y[run.eval_indices]


def test_stored_autoattack_stages_of_another_model_are_not_resumed(caplog: pytest.LogCaptureFixture) -> None:
    from ctrobust.attacks.staged import StageState
    from ctrobust.stages.finals import FinalArm, _resumable

    x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    seen = split_behaviour(net, x, 6, torch.device("cpu"))
    state = StageState(torch.ones(6, dtype=torch.bool), x, y, ["apgd-ce"], behaviour=seen.to_dict())
    restored = StageState.from_arrays(state.to_arrays(), torch.device("cpu"))
    assert restored.behaviour == seen.to_dict()
    assert _resumable(restored, FinalArm(1.0, net, None, behaviour=seen), y) is restored
    moved = SplitBehaviour([1 - p for p in seen.predictions], seen.class_means, seen.scale)
    with caplog.at_level(logging.WARNING, logger="ctrobust"):
        assert _resumable(restored, FinalArm(1.0, net, None, behaviour=moved), y) is None
    assert any("stored AutoAttack stages of the original model were made by another model" in r.getMessage()
               for r in caplog.records)
    older = StageState(torch.ones(6, dtype=torch.bool), x, y, ["apgd-ce"])  # stored by an older ctrobust
    assert _resumable(older, FinalArm(1.0, net, None, behaviour=moved), y) is older
