"""AutoAttack run stage by stage across two arms gives per point exactly what one whole call gives."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conftest import REPO, interruptible, run_cli
from ctrobust.attacks.autoattack import autoattack
from ctrobust.attacks.execution import MicroBatched, frozen_parameters, probe_execution
from ctrobust.attacks.staged import StagedAutoAttack, StageState
from ctrobust.ct import curvature_tuned
from ctrobust.threats import ThreatModel


def _tiny_cnn(seed: int = 0) -> nn.Module:
    """A small CNN whose predictions vary with the input (random weights, scaled up)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        for layer in (model[0], model[4], model[6]):
            layer.weight.mul_(4.0)
    return model


def _points(model: nn.Module, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 8x8 images labelled by the model itself (all clean-correct), two of them relabelled wrong."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.6 + 0.2
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10  # misclassified points: AutoAttack skips them
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("threat,eps", [(ThreatModel.LINF, 0.015), (ThreatModel.L2, 0.15)])
def test_staged_equals_whole_run_for_base_and_ct(threat: ThreatModel, eps: float) -> None:
    base_model = _tiny_cnn()
    arms = {"base": curvature_tuned(base_model, 1.0, impl="eager"), "ct": curvature_tuned(base_model, 0.8, impl="eager")}
    x, y = _points(base_model, 20)
    # The staged run: both arms advance one attack at a time, interleaved, in small batches.
    staged = {name: StagedAutoAttack(m, x, y, eps, threat, 10, seed=3, batch_size=4) for name, m in arms.items()}
    bounds: dict[str, list[int]] = {name: [] for name in arms}
    for attack in staged["base"].attacks:
        for name, run in staged.items():
            run.run_stage(attack)
            bounds[name].append(run.robust_count)
    for name, model in arms.items():
        got = staged[name].finish()
        whole = autoattack(model, x, y, eps, threat, 10, seed=3, batch_size=4)
        assert torch.equal(got.y_adv, whole.y_adv), name
        assert torch.equal(got.x_adv, whole.x_adv), name
        assert got.breakdown == whole.breakdown, name
        assert got.flags == whole.flags, name
        assert bounds[name] == sorted(bounds[name], reverse=True)  # each stage's bound is an upper bound
        assert bounds[name][-1] == int((whole.y_adv == y).sum())
    # Points must have survived APGD-CE and some been broken later, or the later stages compared nothing.
    assert all(bounds[name][0] > 0 for name in arms)
    assert any(bounds[name][-1] < bounds[name][0] for name in arms), bounds


def test_stage_state_round_trips_and_resumes() -> None:
    model = _tiny_cnn()
    x, y = _points(model, 10)
    first = StagedAutoAttack(model, x, y, 0.03, ThreatModel.LINF, 10, seed=0, batch_size=4)
    first.run_stage("apgd-ce")
    state = StageState.from_arrays(first.state.to_arrays(), torch.device("cpu"))
    assert state.done == ["apgd-ce"] and torch.equal(state.robust, first.state.robust)
    resumed = StagedAutoAttack(model, x, y, 0.03, ThreatModel.LINF, 10, seed=0, batch_size=4, state=state)
    assert resumed.pending == ["apgd-t", "fab-t", "square"]


def test_micro_batches_are_used_only_where_bit_identical() -> None:
    model = _tiny_cnn()
    x = torch.rand(300, 1, 8, 8)
    with frozen_parameters(model):
        assert not any(p.requires_grad for p in model.parameters())
        execution = probe_execution({"base": model}, x, batch_size=500)
    assert all(p.requires_grad for p in model.parameters())  # restored
    assert "whole" in execution.candidates and execution.seconds_per_image["base forward+backward"] > 0
    wrapped = execution.wrap(model)
    with torch.no_grad():
        assert torch.equal(wrapped(x), model(x))
    with torch.no_grad():  # a split the probe did not check is the same function up to rounding
        split, whole = MicroBatched(model, 7)(x[:20]), model(x[:20])
    # float32 rounding of a convolution's sums depends on the batch size and the CPU (3 ulp measured on AMD EPYC)
    torch.testing.assert_close(split, whole)


def test_channels_last_is_taken_or_refused_with_a_reason_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def two_convs() -> nn.Module:  # the second convolution has 4 input channels: its formats differ
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)).eval()

    model = two_convs()
    x = torch.rand(300, 1, 8, 8)
    with frozen_parameters(model):
        execution = probe_execution({"base": model}, x, batch_size=500)
    weight = model[2].weight
    in_channels_last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert execution.channels_last == in_channels_last  # the format left on the model is the one recorded
    assert execution.channels_last or "channels-last" in execution.refused
    assert execution.to_dict()["channels_last"] == execution.channels_last
    monkeypatch.setenv("CTROBUST_CHANNELS_LAST", "0")
    model = two_convs()
    with frozen_parameters(model):
        off = probe_execution({"base": model}, x, batch_size=500)
    assert not off.channels_last and "CTROBUST_CHANNELS_LAST=0" in off.refused["channels-last"]
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.slow
def test_ctrl_c_after_a_stage_keeps_it_and_the_same_command_resumes(tmp_path: Path) -> None:
    """Interrupted once the table after APGD-CE is out: exit 130, one line naming the bound; the same
    command then resumes at APGD-T and gives exactly the numbers of an uninterrupted run."""
    args = ["eval", "--model", "smallcnn", "--threat", "linf", "--n-examples", "24", "--n-select", "20",
            "--betas", "0.9", "--no-base-candidate", "--select-steps", "2", "--no-progress"]
    store = tmp_path / "s.sqlite"
    command = [sys.executable, "-m", "ctrobust.cli.main", *args, "--store", str(store), "--out", str(tmp_path / "a")]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if any(s.startswith("after APGD-CE") for s in seen) and line.startswith("  gain"):  # the table is out
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    last = [line for line in rest.strip().splitlines() if line.strip()][-1]
    assert last.startswith("ctrobust: interrupted") and "AutoAttack stopped after APGD-CE, upper bounds" in last, rest
    assert "resumes at APGD-T" in last and "Traceback" not in rest

    resumed = run_cli(*args, "--store", str(store), "--out", str(tmp_path / "b"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming CT \u03b2=0.90's AutoAttack after APGD-CE" in resumed.stderr
    whole = run_cli(*args, "--store", str(tmp_path / "fresh.sqlite"), "--out", str(tmp_path / "c"))
    assert whole.returncode == 0, whole.stderr
    got, expected = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("b", "c"))
    assert got["per_example"] == expected["per_example"]
    with sqlite3.connect(store) as db:  # the finished cells replaced their stages
        assert db.execute("SELECT COUNT(*) FROM artifacts WHERE key LIKE 'autoattack-stage/%'").fetchone()[0] == 0


def test_fast_max_pool_is_max_pool_to_the_bit_with_ties() -> None:
    from ctrobust.attacks.execution import _MaxPool2x2

    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 8)
    x[0, 0, :2, :2] = 0.5  # a window of ties: the gradient must go to its first element, as max_pool2d's
    x[1, 2] = 0.0
    grad = torch.randn(3, 4, 3, 4)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    out_a, out_b = torch.nn.functional.max_pool2d(a, 2), _MaxPool2x2.apply(b)
    out_a.backward(grad)
    out_b.backward(grad)
    assert torch.equal(out_a, out_b) and torch.equal(a.grad, b.grad)
    model = _tiny_cnn()
    fast = MicroBatched(model, None, fast_pool=True)
    x = torch.rand(50, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(fast(x), model(x))


@pytest.mark.slow
def test_ctrobust_run_hands_each_provisional_table_to_a_callback() -> None:
    import ctrobust

    tables: list = []
    result = ctrobust.run("smallcnn", threat="linf", n_examples=12, n_select=12, betas="0.9", no_base_candidate=True,
                          select_steps=2, on_provisional=tables.append)
    assert [t.after for t in tables] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert [t.final for t in tables] == [False, False, False, True]
    for beta in (1.0, 0.9):
        counts = [t.robust[beta] for t in tables]
        assert counts == sorted(counts, reverse=True)  # upper bounds that only come down
    last = tables[-1]
    assert last.robust[1.0] == result.base.white_box_correct and last.robust[0.9] == result.ct.white_box_correct
    assert last.gain is not None and last.gain.n == 12
    assert "after SQUARE" in str(last) and "<table>" in last._repr_html_()
