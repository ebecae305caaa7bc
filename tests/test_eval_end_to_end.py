"""`ctrobust eval` end to end on a small real Fashion-MNIST subset with the shipped smallcnn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import read_json, run_cli
from ctrobust.models import load_model
from ctrobust.plan.config import EvalConfig
from ctrobust.plan.run_plan import RunPlan
from ctrobust.results.result import RunResult
from ctrobust.stages.pipeline import run_eval

REQUIRED_KEYS = {
    "model", "dataset", "threat", "eps", "attack", "select_attack", "seed", "protocol", "betas", "select_curve",
    "beta", "base", "ct", "eval_indices", "select_indices",
}


@pytest.mark.slow
@pytest.mark.parametrize("threat", ["linf", "L2"])
def test_cli_eval_autoattack(tmp_path: Path, threat: str) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "eval", "--model", "smallcnn", "--dataset", "fashion-mnist", "--threat", threat, "--n-examples", "10",
        "--n-select", "10", "--betas", "0.85,0.95", "--out", str(out), "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "base (ReLU)" in proc.stdout and "chosen beta" in proc.stdout
    result = read_json(out / "result.json")
    assert REQUIRED_KEYS <= result.keys()
    assert result["attack"] == "autoattack-standard"
    assert result["threat"] == {"linf": "Linf", "L2": "L2"}[threat]
    assert set(result["select_curve"]) == {"0.85", "0.95", "1.0"}  # beta = 1 (no CT) is a candidate; exact keys
    assert result["base_candidate"] is True
    assert result["beta"] in (0.85, 0.95, 1.0)
    assert not set(result["eval_indices"]) & set(result["select_indices"])
    assert result["eval_indices"] == list(range(10))
    for part in ("base", "ct"):
        assert 0 <= result[part]["robust_accuracy"] <= result[part]["clean_accuracy"] <= 1
    assert (out / "result.csv").read_text().count("\n") == 3


@pytest.mark.slow
def test_json_flag_prints_parsable_json(tmp_path: Path) -> None:
    proc = run_cli(
        "eval", "--n-examples", "20", "--n-select", "20", "--betas", "0.9", "--attack", "apgd-ce", "--steps", "5",
        "--select-steps", "5", "--json", "--out", str(tmp_path), "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dataset"] == "fashion-mnist" and result["model"] == "smallcnn"  # dataset followed from the model
    assert result["protocol"] == "heldout" and result["optimistic"] is False


def _small_plan(**kw: object) -> RunPlan:
    base = dict(n_examples=60, n_select=60, betas="0.8,0.9", attack="pgd", steps=10, select_steps=10, seed=1)
    base.update(kw)
    return EvalConfig(**base).resolve()  # type: ignore[arg-type]


@pytest.mark.slow
def test_selection_curve_matches_direct_evaluation(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """The stored curve is what evaluating CT at each beta on the selection indices gives."""
    from ctrobust import curvature_tuned, evaluate
    from ctrobust.attacks.spec import AttackSpec

    result = run_eval(_small_plan())
    x, y = fmnist_test
    model = load_model("smallcnn").model
    idx = result.select_indices
    for beta, acc in result.select_curve.items():
        res = evaluate(curvature_tuned(model, beta, impl="eager"), x[idx], y[idx], "linf", eps=0.05,
                       attack=AttackSpec("apgd-ce", 10), seed=1, batch_size=500)
        assert res.robust_accuracy == pytest.approx(acc)
    best = max(result.select_curve.items(), key=lambda kv: (kv[1], kv[0]))
    assert result.beta == best[0]
    # The accuracies are the exact counts' ratios, as stored.
    assert result.base.counts.n == 60 and result.base.robust_accuracy == result.base.counts.robust_correct / 60


@pytest.mark.slow
def test_paper_protocol_is_labelled_and_clipped() -> None:
    result = run_eval(_small_plan(protocol="paper"))
    assert result.optimistic is True and result.note is not None and "OPTIMISTIC" in result.note
    assert result.select_indices == result.eval_indices
    assert result.select_attack == result.attack
    assert result.ct.robust_accuracy >= result.base.robust_accuracy


@pytest.mark.slow
def test_same_seed_same_result() -> None:
    a, b = run_eval(_small_plan()), run_eval(_small_plan())
    assert a.per_example == b.per_example and a.select_curve == b.select_curve
    assert RunResult.from_dict(json.loads(json.dumps(a.to_dict()))).to_dict() == a.to_dict()  # stored = returned


def test_shipped_weights_reach_90_percent(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from ctrobust.models.train import accuracy

    x, y = fmnist_test
    assert accuracy(load_model("smallcnn").model, x, y) >= 0.90
    meta = json.loads(Path(load_model("smallcnn").checkpoint).with_suffix(".json").read_text())  # type: ignore[arg-type]
    assert meta["command"].startswith("ctrobust train --model smallcnn --dataset fashion-mnist")
    assert meta["seed"] == 0 and meta["test_accuracy"] >= 0.90


@pytest.mark.slow
def test_train_command_reaches_90_percent(tmp_path: Path) -> None:
    """A shortened run (2 of the 4 epochs) of the command that made the shipped weights."""
    out = tmp_path / "smallcnn.pt"
    proc = run_cli("train", "--model", "smallcnn", "--dataset", "fashion-mnist", "--epochs", "2", "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    meta = read_json(out.with_suffix(".json"))
    assert meta["test_accuracy"] >= 0.90
    assert set(torch.load(out, weights_only=True)) == set(load_model("smallcnn").model.state_dict())
