"""A check never takes a run down: on every shape of model the run's numbers are written, and each check either gives
its verdict or says NOT RUN and why (``--strict-checks`` then exits 3)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import ctrobust
from conftest import run_cli
from ctrobust.checks import binarization
from ctrobust.checks.budget import CheckSizes
from ctrobust.models import load_model

FULL = CheckSizes(share=1.0, budget=1e9, planned=0.0, reference_points=100, reattack_points=100,
                  binarization_samples=20)  # every check at its size, whatever the budget
TINY = dict(dataset="fashion-mnist", threat="linf", n_examples=20, n_select=20, betas=[0.9], no_base_candidate=True,
            attack="apgd-ce", steps=5, select_steps=5, ctu="eager", check_budget=60)  # every check at about its minimum size


def _smallcnn() -> nn.Module:
    return load_model("smallcnn").model.eval()


class AfterHead(nn.Module):
    """The shipped model with something applied after its last ``nn.Linear``."""

    def __init__(self, after: str) -> None:
        super().__init__()
        self.inner, self.after = _smallcnn(), after
        self.offset = nn.Parameter(torch.linspace(-1, 1, 10), requires_grad=False)
        self.identity = nn.Identity()
        self.log_softmax = nn.LogSoftmax(dim=1)
        self.batchnorm = nn.BatchNorm1d(10)  # fresh statistics: almost the identity on the logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        if self.after == "offset":
            return logits + self.offset
        if self.after == "temperature":
            return logits / 3.0
        if self.after == "float16":
            return logits.half()
        if self.after == "log_softmax":
            return self.log_softmax(logits)
        if self.after == "batchnorm":
            return self.batchnorm(logits)
        return self.identity(logits)


class TwoHeads(nn.Module):
    """The shipped model's features read by two linear heads, averaged (a small ensemble)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _smallcnn()
        self.head_a = self.body.model.fc2
        self.head_b = nn.Linear(self.head_a.in_features, 10)
        with torch.no_grad():
            self.head_b.weight.copy_(self.head_a.weight * 0.9)
            self.head_b.bias.copy_(self.head_a.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: list[torch.Tensor] = []
        handle = self.head_a.register_forward_pre_hook(lambda _m, args: features.append(args[0]))
        try:
            a = self.body(x)
        finally:
            handle.remove()
        return (a + self.head_b(features[-1])) / 2


class ConvHead(nn.Module):
    """No ``nn.Linear`` at all: a 1x1 convolution and global pooling give the logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 10, 1),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


SHAPES = {
    "offset after the head": lambda: AfterHead("offset"),
    "temperature after the head": lambda: AfterHead("temperature"),
    "two heads averaged": TwoHeads,
    "convolutional head": ConvHead,
    "float16 logits": lambda: AfterHead("float16"),
    "final LogSoftmax": lambda: AfterHead("log_softmax"),
    "Identity after the head": lambda: AfterHead("identity"),
    # issue 37 item 9: came in training mode, evaluated in evaluation mode; the readout must not feed it two logits
    "BatchNorm after the logits, training mode": lambda: _training_batchnorm(),
}


def _training_batchnorm() -> nn.Module:
    model = AfterHead("batchnorm")
    model.batchnorm.train()
    return model


def test_the_readout_reads_the_logits_when_the_model_computes_after_its_head(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    x = fmnist_test[0][:2]
    assert binarization.find_head(AfterHead("identity"), x).kind == "penultimate"
    for after in ("offset", "temperature", "float16", "log_softmax"):
        assert binarization.find_head(AfterHead(after), x).kind == "logits", after
    assert binarization.find_head(TwoHeads(), x).kind == "logits"
    assert binarization.find_head(ConvHead(), x).kind == "logits"


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_model_shape_ends_with_its_numbers_and_a_verdict_or_a_reason(shape: str, tmp_path: Path) -> None:
    result = ctrobust.run(SHAPES[shape](), store=tmp_path / "s.sqlite", name=shape.replace(" ", "-"), **TINY)
    assert result.n_examples == 20 and result.ct.counts.n == 20  # the run's numbers
    report = result.sanity
    assert report is not None
    arms = report.binarization.arms if report.binarization is not None else {}
    if arms:
        assert {arm.verdict for arm in arms.values()} <= {"PASS", "FAIL", "INCONCLUSIVE"}
    else:
        assert report.not_run.get("binarization"), "no verdict and no reason"
    assert not any(why.startswith("crashed") for why in report.not_run.values()), report.not_run
    stored = ctrobust.load_results(tmp_path / "s.sqlite")
    assert len(stored) == 1  # the run's row is in the store


@pytest.mark.slow
def test_a_check_that_crashes_is_one_warning_and_not_run(monkeypatch: pytest.MonkeyPatch, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """Whatever goes wrong inside a check stays inside it: the other checks run and the outcomes come back."""
    from ctrobust.attacks.spec import AttackSpec
    from ctrobust.checks import sanity
    from ctrobust.ct import curvature_tuned
    from ctrobust.threats import ThreatModel
    from test_attack_registry import final_arms

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x128 and 10x2)")

    monkeypatch.setattr(sanity.binarization, "binarize", broken)
    monkeypatch.setattr(sanity, "gradient_fidelity", broken)
    x, y = fmnist_test[0][:20], fmnist_test[1][:20]
    ct = curvature_tuned(_smallcnn(), 0.9, impl="eager")
    spec = AttackSpec("apgd-ce", steps=5)
    arms = final_arms(ct, x, y, spec, (1.0, 0.9))
    base, worst_ct, report = sanity.run_sanity_checks(ct, 0.9, x, y, ThreatModel.LINF, 0.05, 0, 64,
                                                      torch.device("cpu"), None, arms[1.0], arms[0.9], spec, FULL)
    assert len(base) == len(worst_ct) == 20
    assert report.not_run["binarization"].startswith("crashed (RuntimeError: mat1 and mat2")
    assert report.not_run["gradient fidelity"].startswith("crashed (RuntimeError")
    assert report.budget is not None and report.budget.ct and report.logits["ct"]  # the other checks ran
    named = [w for w in report.warnings if w.startswith("the binarization check could not run")]
    assert len(named) == 1
    assert any(line.startswith("NOT RUN       gradient fidelity") for line in report.lines())
    assert "NOT RUN" in (report.binarization_line() or "")


MODEL_FILE = '''
import torch
import torch.nn as nn
from ctrobust.models import load_model


class Offset(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = load_model("smallcnn").model

    def forward(self, x):
        return self.inner(x) + torch.linspace(-1, 1, 10)


def offset():
    return Offset()


def attack_dlr_only():
    return load_model("smallcnn").model
'''


@pytest.mark.slow
def test_strict_checks_exits_3_when_a_check_could_not_run_and_0_otherwise(tmp_path: Path) -> None:
    """The issue's crash, through the command line: a constant after the last nn.Linear ran every attack, then the
    binarization test ended the run in a traceback. Now: exit 0, a written result with a verdict; and an attack
    that has no binarized form gives NOT RUN, which --strict-checks turns into exit 3 with the result written."""
    (tmp_path / "shapes.py").write_text(textwrap.dedent(MODEL_FILE))
    common = ["--dataset", "fashion-mnist", "--n-examples", "20", "--n-select", "20", "--betas", "0.9",
              "--no-base-candidate", "--select-steps", "5", "--check-budget", "60", "--store", str(tmp_path / "s.sqlite")]
    proc = run_cli("eval", "--model", f"{tmp_path / 'shapes.py'}:offset", "--attack", "apgd-ce", "--steps", "5",
                   *common, "--out", str(tmp_path / "offset"), "--strict-checks", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads((tmp_path / "offset" / "result.json").read_text())
    assert result["sanity_checks"]["binarization"]["arms"]["ct"]["features"] == "logits"

    proc = run_cli("eval", "--model", f"{tmp_path / 'shapes.py'}:attack_dlr_only", "--attack", "apgd-dlr",
                   "--steps", "5", *common, "--out", str(tmp_path / "dlr"), "--strict-checks", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "checks not run (--strict-checks): binarization: apgd-dlr-5steps cannot run on a binarized model" in proc.stderr
    assert "NOT RUN" in proc.stdout
    assert (tmp_path / "dlr" / "result.json").is_file()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_logits_are_named_in_one_line(dtype: torch.dtype, fmnist_test,  # type: ignore[no-untyped-def]
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """float16 logits weaken the gradient attacks without a word: the check of the model's outputs says so."""
    from ctrobust.stages.subject import check_model_outputs

    class Cast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = load_model("smallcnn").model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).to(dtype)

    x, y = fmnist_test
    assert check_model_outputs(Cast(), x[:8], y[:8], "fashion-mnist") == 10
    named = [r.getMessage() for r in caplog.records if "output is" in r.getMessage()]
    if dtype is torch.float32:
        assert named == []
    else:
        assert len(named) == 1 and str(dtype).removeprefix("torch.") in named[0] and "float32" in named[0]
