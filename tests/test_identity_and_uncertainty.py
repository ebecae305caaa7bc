"""Runs never overwrite or pool each other; every gain comes with its paired interval and test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from conftest import run_cli
from ctrobust.identity import identity_key
from ctrobust.plan.config import EvalConfig
from ctrobust.plan.run_plan import RunPlan
from ctrobust.report.tables import paper_table
from ctrobust.results.stats import paired_gain, paired_gain_counts, pooled_gain
from ctrobust.results.store import existing_store
from ctrobust.results.uncertainty import selection_flags

TINY = ["--n-examples", "20", "--n-select", "20", "--attack", "apgd-ce", "--steps", "2", "--select-steps", "2",
        "--no-progress"]


def test_paired_gain_matches_published_example() -> None:
    """Fagerland, Lydersen & Laake's paired example (59, 6 / 16, 80): -0.0621, 95% CI -0.1186 to -0.0046."""
    gain = paired_gain_counts(both=59, only_base=16, only_ct=6, neither=80)
    assert gain.gain_points == pytest.approx(-6.21, abs=0.005)
    assert gain.low == pytest.approx(-11.86, abs=0.005)
    assert gain.high == pytest.approx(-0.46, abs=0.005)
    assert gain.p_value == pytest.approx(0.0525, abs=0.0005)  # exact binomial on 6 vs 16
    assert not gain.significant


def test_paired_gain_from_outcomes_and_pooled() -> None:
    base = [1, 1, 0, 0, 1, 0]
    ct = [1, 0, 1, 1, 1, 0]
    gain = paired_gain(base, ct)
    assert (gain.only_base, gain.only_ct, gain.n) == (1, 2, 6)
    assert gain.gain_points == pytest.approx(100 / 6)
    assert gain.low < gain.gain_points < gain.high
    pooled = pooled_gain([gain, gain])
    assert (pooled.only_base, pooled.only_ct, pooled.n) == (2, 4, 12)
    assert pooled.high - pooled.low < gain.high - gain.low


def test_selection_flags() -> None:
    grid = [0.7, 0.8, 0.9]
    flat = selection_flags({0.7: 0.20, 0.8: 0.21, 0.9: 0.22, 1.0: 0.20}, 0.9, [*grid, 1.0], 100)
    assert flat.flat and flat.edge == "highest" and not flat.no_ct
    assert flat.suggestion == "0.9:0.99:0.01"  # no room at the grid's step below 1: a finer grid from 0.9
    sharp = selection_flags({0.7: 0.60, 0.8: 0.20, 0.9: 0.10, 1.0: 0.10}, 0.7, [*grid, 1.0], 500)
    assert not sharp.flat and sharp.edge == "lowest"
    relu = selection_flags({0.7: 0.1, 0.8: 0.1, 0.9: 0.1, 1.0: 0.4}, 1.0, [*grid, 1.0], 500)
    assert relu.no_ct and relu.edge is None


def test_new_option_changes_identity_without_touching_a_list() -> None:
    @dataclass(frozen=True)
    class WithNewOption(RunPlan):
        temperature: float = 1.0
        scratch_dir: str = field(default="/tmp", metadata={"identity": False})

    plan = EvalConfig().resolve()
    a = WithNewOption(**{**plan.__dict__, "temperature": 1.0})
    b = replace(a, temperature=2.0)
    assert "temperature" in a.identity() and "scratch_dir" not in a.identity()
    assert _key(a) != _key(b)
    assert _key(replace(a, scratch_dir="/elsewhere")) == _key(a)
    # Options marked as not affecting the numbers stay out of it.
    assert _key(EvalConfig(device="cpu").resolve()) == _key(EvalConfig(device="cuda").resolve())


def test_identity_is_of_the_resolved_plan() -> None:
    """The same run spelt two ways is one run: eps defaults, beta grids and names are resolved first."""
    default = EvalConfig().resolve()
    assert default.eps == 0.05 and default.dataset == "fashion-mnist"
    assert _key(EvalConfig(eps=0.05, dataset="fmnist", threat="LINF").resolve()) == _key(default)
    assert _key(EvalConfig(betas="0.8,0.9").resolve()) == _key(EvalConfig(betas="0.80:0.90:0.1").resolve())
    assert _key(EvalConfig(betas="0.8,0.9").resolve()) != _key(EvalConfig(betas="0.8,0.95").resolve())
    assert _key(EvalConfig(eps=0.03).resolve()) != _key(default)
    assert _key(EvalConfig(no_base_candidate=True).resolve()) != _key(default)


def _key(plan: RunPlan) -> str:
    """The plan's part of a run's identity, hashed as the run id hashes it."""
    return identity_key(plan.identity())


def _run(tmp_path: Path, store: Path, *args: str) -> dict:
    proc = run_cli("eval", *TINY, "--store", str(store), *args, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_runs_that_differ_get_their_own_folder_and_row(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    variants = {
        "reference": ["--betas", "0.8,0.9"],
        "betas": ["--betas", "0.80:0.95:0.05"],
        "eps": ["--betas", "0.8,0.9", "--eps", "0.03"],
        "n": ["--betas", "0.8,0.9", "--n-examples", "25"],
        "attack": ["--betas", "0.8,0.9", "--attack", "pgd"],
        "other seed": ["--betas", "0.8,0.9", "--seed", "1"],
    }
    results = {name: _run(tmp_path, store, *args) for name, args in variants.items()}
    folders = {name: sorted(p.name for p in (tmp_path / "reports").iterdir() if r["run_id"] in p.name)
               for name, r in results.items()}
    assert all(len(found) == 1 for found in folders.values()), folders
    assert len({found[0] for found in folders.values()}) == len(variants)  # nothing written over
    with existing_store(store) as opened:
        rows = paper_table(opened.runs())
    by_seeds = sorted(rows["seeds"])
    assert by_seeds == ["0", "0", "0", "0", "0,1"]  # the two seeds of one setting share a row, nothing else
    for r in results.values():
        gain = r["gain"]
        assert gain["ci_low_points"] <= gain["gain_points"] <= gain["ci_high_points"]
        assert r["base_candidate"] is True and 1.0 in r["candidates"]
    # The same identity again is the same run: reused, same folder.
    again = _run(tmp_path, store, *variants["reference"])
    assert again["run_id"] == results["reference"]["run_id"]
    assert again["cells"]["computed"] == 0


@pytest.mark.slow
def test_terminal_shows_gain_interval_and_warnings(tmp_path: Path) -> None:
    proc = run_cli("eval", *TINY, "--betas", "0.7:0.9:0.1", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "95% CI [" in proc.stdout and "McNemar p =" in proc.stdout and "discordant" in proc.stdout
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    if result["gain"]["mcnemar_p"] >= 0.05:
        assert "not significant at 5%" in proc.stdout
    if result["selection_flags"]["flat_curve"]:
        assert "flat selection curve" in proc.stdout
    csv_text = (tmp_path / "out" / "result.csv").read_text()
    assert "gain_ci_low" in csv_text.splitlines()[0]


@pytest.mark.slow
@pytest.mark.parametrize("threat", ["linf", "corruptions"])
def test_result_validates_against_documented_schema(tmp_path: Path, threat: str) -> None:
    import jsonschema

    from conftest import REPO

    schema = json.loads((REPO / "docs" / "result.schema.json").read_text())
    extra = ["--corruptions", "fog,snow", "--severities", "1", "--data-dir", str(tmp_path / "data")] \
        if threat == "corruptions" else []
    result = _run(tmp_path, tmp_path / "s.sqlite", "--threat", threat, "--betas", "0.8,0.9", *extra)
    jsonschema.validate(result, schema)
    for variant in ("base", "ct"):  # the fractions are the exact counts' ratios
        counts = result[variant]["counts"]
        assert result[variant]["clean_accuracy"] == pytest.approx(counts["clean_correct"] / counts["n"])
    if threat != "corruptions":
        assert result["base"]["robust_accuracy"] == pytest.approx(
            result["base"]["counts"]["robust_correct"] / result["base"]["counts"]["n"])
    broken = {**result, "gain": {**result["gain"], "mcnemar_p": 2.0}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


MASKED_MODEL = '''
import torch
import torch.nn as nn

from ctrobust.models import load_model


class Quantize(nn.Module):
    """Rounds the input to 8 bits: the same decisions on real images, and zero input gradients."""

    def forward(self, x):
        return torch.round(x * 255) / 255


def build():
    return nn.Sequential(Quantize(), load_model("smallcnn").model)
'''


@pytest.mark.slow
def test_sanity_checks_flag_gradient_masking_and_not_the_shipped_model(tmp_path: Path) -> None:
    src = tmp_path / "masked.py"
    src.write_text(MASKED_MODEL)
    masked = _run(tmp_path, tmp_path / "m.sqlite", "--model", f"{src}:build", "--dataset", "fashion-mnist",
                  "--betas", "0.9", "--no-base-candidate", "--n-examples", "60", "--check-budget", "100")
    checks = masked["sanity_checks"]
    assert checks["budget"]["ct"]["8"] > 0.1 and checks["logits"]["ct"]["zero_grad_share"] > 0.9  # shipped: 0.0, 0.0
    assert any("gradient masking" in w for w in checks["warnings"])
    assert any("near zero" in w for w in checks["warnings"])
    for arm in checks["binarization"]["arms"].values():  # the attack cannot find what provably exists
        assert arm["verdict"] == "FAIL" and arm["found"] <= 2 and arm["m"] >= 20, arm
    assert any("binarization test FAILED" in w for w in checks["warnings"])
    shipped = _run(tmp_path, tmp_path / "s.sqlite", "--betas", "0.9", "--no-base-candidate", "--n-examples", "60",
                   "--steps", "20", "--check-budget", "100")  # a 2-step attack is rightly reported weaker than the
    # 20-step reference
    checks = shipped["sanity_checks"]
    assert checks["warnings"] == [], checks["warnings"]
    for arm in checks["binarization"]["arms"].values():
        assert arm["verdict"] == "PASS" and arm["setup_failed"] <= 2 and arm["random_found"] <= 2, arm
    assert checks["budget"]["base"]["8"] <= 0.02 and checks["budget"]["ct"]["8"] <= 0.02
    # CT's reported robust accuracy is the worst case over its own attack and the transferred examples.
    assert shipped["ct"]["robust_accuracy"] <= shipped["ct"]["robust_accuracy_white_box"]
    # ... and over the reference APGD-CE's and the re-attack's breaks: never above the transfer's worst case.
    assert shipped["ct"]["robust_accuracy"] <= checks["transfer"]["combined_robust"]
    ct_points = shipped["per_example"]["ct"]
    assert shipped["ct"]["robust_accuracy"] == sum(ct_points["robust"]) / len(ct_points["robust"])
    assert all(r <= w for r, w in zip(ct_points["robust"], ct_points["robust_white_box"]))
