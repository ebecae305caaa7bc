"""Evidence that the attack worked: the binarization test, gradient fidelity, AutoAttack's flags,
randomised models, PGD's silent successes and the reference attack (docs/results.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import ctrobust
import ctrobust.ct.apply as ct_apply
from conftest import assert_one_line_error, run_cli
from ctrobust.api import evaluate
from ctrobust.attacks.spec import AttackSpec
from ctrobust.attacks.verify import perturbation_norm
from ctrobust.checks import binarization as bz
from ctrobust.checks.gradient_fidelity import gradient_fidelity
from ctrobust.ct import curvature_tuned
from ctrobust.ct.unit import ctu
from ctrobust.errors import CtrobustError
from ctrobust.models import load_model
from ctrobust.threats import ThreatModel

THREATS = [(ThreatModel.LINF, 0.05), (ThreatModel.L2, 1.0)]
CPU = torch.device("cpu")


def _smallcnn() -> nn.Module:
    return load_model("smallcnn").model.eval()


# --- construction ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("threat,eps", THREATS)
def test_planted_points_lie_where_the_test_says(threat: ThreatModel, eps: float, fmnist_test) -> None:
    x, _ = fmnist_test
    planted = bz.plant(x[:40], list(range(12)), threat, eps, seed=3)
    dist = perturbation_norm(planted.boundary - planted.x, threat)
    assert torch.allclose(dist, torch.full_like(dist, eps), rtol=1e-3), dist
    assert float(planted.boundary.min()) >= 0 and float(planted.boundary.max()) <= 1
    inner = perturbation_norm((planted.inner - planted.x.unsqueeze(1)).flatten(0, 1), threat)
    assert float(inner.max()) <= bz.INNER_RADIUS * eps * (1 + 1e-5)
    assert float(planted.inner.min()) >= 0 and float(planted.inner.max()) <= 1
    again = bz.plant(x[:40], list(range(12)), threat, eps, seed=3)
    assert torch.equal(again.boundary, planted.boundary) and torch.equal(again.inner, planted.inner)


@pytest.mark.parametrize("threat,eps", THREATS)
def test_readout_separates_and_the_binarized_model_answers_in_the_attacks_layout(threat: ThreatModel, eps: float,
                                                                                 fmnist_test) -> None:
    x, _ = fmnist_test
    ct = curvature_tuned(_smallcnn(), 0.8, impl="eager")
    planted = bz.plant(x, list(range(8)), threat, eps, seed=0)
    where = bz.find_head(ct, planted.x[:2])
    last_linear = [m for m in ct.model.modules() if isinstance(m, nn.Linear)][-1]
    assert where.kind == "penultimate" and where.head is last_linear
    weights, biases = [], []
    for i in range(8):
        inner = torch.cat([planted.x[i : i + 1], planted.inner[i]])
        f_inner = bz.features(ct, where, inner, 100)
        f_boundary = bz.features(ct, where, planted.boundary[i : i + 1], 100)[0]
        fitted = bz.fit_readout(f_inner, f_boundary)
        assert fitted is not None
        w, b = fitted
        assert bool(((f_inner @ w + b) < 0).all()) and float(f_boundary @ w + b) > 0  # readout accuracy 1
        w, b = bz.place_readout(w, b, f_inner, f_boundary, 20.0)
        weights.append(w)
        biases.append(b)
    binarized = bz.BinarizedModel(ct, where, torch.stack(weights), torch.stack(biases))
    with torch.no_grad():
        assert binarized(planted.x).argmax(1).tolist() == [0] * 8  # one row per readout, as the attack batches
        assert binarized(planted.boundary).argmax(1).tolist() == [1] * 8
        with binarized.using_rows(torch.tensor([5, 2])):
            assert binarized(planted.boundary[[5, 2]]).argmax(1).tolist() == [1, 1]
    with pytest.raises(RuntimeError, match="readouts"):
        binarized(planted.x[:3])


@pytest.mark.slow
def test_each_arm_runs_only_at_its_own_beta(fmnist_test, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CT arm's passes all run at beta*, the original model's at 1 (CT's view is unchanged there)."""
    from ctrobust.checks import sanity

    x, _ = fmnist_test
    ct = curvature_tuned(_smallcnn(), 0.8, impl="eager")
    seen: dict[str, set[float]] = {}
    real = bz.run_arm

    def spy(model, planted, threat, eps, spec, seed, batch_size, device, label, on_phase=None):  # type: ignore[no-untyped-def]
        betas: set[float] = set()
        handle = model.register_forward_pre_hook(lambda m, _a: betas.add(m.beta))
        try:
            return real(model, planted, threat, eps, spec, seed, batch_size, device, label, on_phase)
        finally:
            handle.remove()
            seen[label] = betas

    monkeypatch.setattr(bz, "run_arm", spy)
    out = sanity._binarization(ct, 0.8, x[:30], ThreatModel.LINF, 0.05, AttackSpec("apgd-ce", steps=5), 0, 500,
                               CPU, bz.MIN_SAMPLES, "", list(range(30)))
    assert seen == {"CT beta=0.80": {0.8}, "base": {1.0}}
    assert out.arms["ct"].m + out.arms["ct"].setup_failed == bz.MIN_SAMPLES


def test_verdicts() -> None:
    assert bz.verdict(20, 20, 0) == "PASS" and bz.verdict(19, 20, 0) == "PASS"
    assert bz.verdict(2, 20, 0) == "FAIL"
    assert bz.verdict(18, 20, 0) == "INCONCLUSIVE" and bz.verdict(17, 20, 0) == "FAIL"  # 18: the interval reaches 95%
    assert bz.verdict(20, 20, 20) == "INCONCLUSIVE"  # random points pass too
    assert bz.verdict(10, 10, 0) == "INCONCLUSIVE"  # too few samples


# --- the shipped model: PASS on both arms ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("threat,eps", THREATS)
@pytest.mark.parametrize("spec", [AttackSpec("apgd-ce", steps=20), AttackSpec("autoattack")], ids=["apgd", "aa"])
def test_shipped_model_passes_on_both_arms(threat: ThreatModel, eps: float, spec: AttackSpec, fmnist_test) -> None:
    x, _ = fmnist_test
    ct = curvature_tuned(_smallcnn(), 1.0, impl="eager")
    planted = bz.plant(x[:200], bz.sample_positions(list(range(200)), 20, 0), threat, eps, 0)
    for beta in (0.8, 1.0):
        ct.beta = beta
        arm = bz.run_arm(ct, planted, threat, eps, spec, 0, 500, CPU, "arm")
        assert arm.verdict == "PASS", arm.line()
        assert arm.setup_failed <= 2 and arm.random_found <= 2, arm  # at most a tenth each
    if spec.name == "apgd-ce":  # the same seed gives the same samples and counts (AutoAttack's: same APGD)
        again = bz.run_arm(ct, planted, threat, eps, spec, 0, 500, CPU, "arm")
        assert again.success == arm.success and again.random_found == arm.random_found


# --- models the test must catch ------------------------------------------------------------------------------

class _NegatedBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        return -grad


def _broken_unit(beta: float, c: float, impl: str):  # type: ignore[no-untyped-def]
    return lambda x: _NegatedBackward.apply(ctu(x, beta, c))


RUN = dict(dataset="fashion-mnist", threat="linf", n_examples=40, n_select=20, betas=[0.9], attack="apgd-ce",
           steps=20, select_steps=5, no_base_candidate=True, ctu="eager", check_budget=100)  # every check runs


@pytest.mark.slow
def test_a_ct_unit_with_a_negated_backward_fails_on_ct_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ct_apply, "make_unit", _broken_unit)
    result = ctrobust.run("smallcnn", store=tmp_path / "s.sqlite", **{**RUN, "betas": "0.9"})
    arms = result.sanity.binarization.arms
    assert arms["ct"].verdict == "FAIL" and arms["base"].verdict == "PASS", result.sanity.lines()
    warnings = " ".join(result.sanity.warnings)
    assert "weaker on CT than on the original model" in warnings
    fidelity = [w for w in result.sanity.warnings if w.startswith("gradient fidelity")]
    assert len(fidelity) == 1 and "of CT" in fidelity[0]


MASKED = '''
import torch
import torch.nn as nn
from ctrobust.models import load_model


class Quantize(nn.Module):
    def forward(self, x):
        return torch.round(x * 255) / 255


class Scramble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        flat = grad.flatten(1)
        perm = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))
        return flat[:, perm].view_as(grad)


class ScrambledInput(nn.Module):
    def forward(self, x):
        return Scramble.apply(x)


class Noisy(nn.Module):
    def forward(self, x):
        return (x + 0.05 * torch.randn_like(x)).clamp(0, 1)


def rounded():
    return nn.Sequential(Quantize(), load_model("smallcnn").model)


def scrambled():
    return nn.Sequential(ScrambledInput(), load_model("smallcnn").model)


def noisy():
    return nn.Sequential(Noisy(), load_model("smallcnn").model)


def softmax():
    return nn.Sequential(load_model("smallcnn").model, nn.Softmax(dim=1))
'''


@pytest.fixture()
def masked(tmp_path: Path) -> Path:
    path = tmp_path / "masked.py"
    path.write_text(MASKED)
    return path


def _load(masked: Path, name: str) -> nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location("masked_models", masked)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, name)().eval()


@pytest.mark.slow
def test_a_scrambled_backward_fails_under_apgd_and_autoattack_flags_it(masked: Path, fmnist_test) -> None:
    x, y = fmnist_test
    model = _load(masked, "scrambled")
    planted = bz.plant(x[:100], bz.sample_positions(list(range(100)), 20, 0), ThreatModel.LINF, 0.05, 0)
    arm = bz.run_arm(model, planted, ThreatModel.LINF, 0.05, AttackSpec("apgd-ce", steps=20), 0, 500, CPU, "arm")
    assert arm.verdict == "FAIL", arm.line()
    assert gradient_fidelity(model, x[:16], y[:16], ThreatModel.LINF, 0.05, CPU).suspicious
    res = evaluate(model, x[:4], y[:4], "linf", eps=0.05, attack="autoattack", seed=0)
    assert any("Square Attack has decreased the robust accuracy" in f for f in res.extra["autoattack_flags"])


@pytest.mark.slow
def test_a_model_ending_in_softmax_gets_the_probability_flag(masked: Path, fmnist_test) -> None:
    x, y = fmnist_test
    res = evaluate(_load(masked, "softmax"), x[:4], y[:4], "linf", eps=0.05, attack="autoattack", seed=0)
    assert any("probability distribution" in f for f in res.extra["autoattack_flags"])


def test_a_randomised_model_is_refused_by_every_attack(masked: Path, fmnist_test) -> None:
    x, y = fmnist_test
    model = _load(masked, "noisy")
    for attack in ("autoattack", "apgd-ce", "pgd"):
        with pytest.raises(CtrobustError, match="randomised.*aa-version rand"):
            evaluate(model, x[:20], y[:20], "linf", eps=0.05, attack=attack)


def test_a_randomised_model_is_refused_before_any_work(masked: Path, tmp_path: Path) -> None:
    proc = run_cli("eval", "--model", f"{masked}:noisy", "--dataset", "fashion-mnist", "--n-examples", "20",
                   "--n-select", "20", "--betas", "0.9", cwd=tmp_path)
    assert_one_line_error(proc, "randomised", "--aa-version rand")


@pytest.mark.slow
def test_a_randomised_model_under_rand_never_beats_autoattacks_own_count(masked: Path, fmnist_test) -> None:
    x, y = fmnist_test
    res = evaluate(_load(masked, "noisy"), x[:4], y[:4], "linf", eps=0.05, attack=AttackSpec("autoattack",
                   version="rand"), seed=0)
    assert res.extra["randomised"] is True
    own = res.extra["robust_accuracy_after"]
    assert res.robust_accuracy <= min(own.values()) + 1e-9


def test_on_a_randomised_model_a_point_counts_robust_only_where_the_attack_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                                   fmnist_test) -> None:
    """The counting rule itself, with a stand-in for AutoAttack's rand run: its verdicts and which points it attacked."""
    import ctrobust.attacks.evaluation as ev
    import ctrobust.attacks.runners as runners

    x, y = fmnist_test[0][:10], fmnist_test[1][:10]
    model = _smallcnn()
    says_robust = torch.tensor([True, False] * 5)
    attacked = torch.tensor([True] * 8 + [False] * 2)

    def stand_in(model, x, y, clean, eps, threat, spec, seed, batch_size):  # type: ignore[no-untyped-def]
        return x.clone(), {"attacked": attacked, "attack_says_robust": says_robust, "autoattack_flags": []}

    monkeypatch.setattr(runners, "run_autoattack", stand_in)
    monkeypatch.setattr(ev, "is_randomised", lambda model, x: True)
    res = evaluate(model, x, y, "linf", eps=0.05, attack=AttackSpec("autoattack", version="rand"))
    expected = res.clean_correct & says_robust & attacked
    assert torch.equal(res.robust_correct, expected)
    assert res.extra["unattacked_points"] == int((res.clean_correct & ~attacked).sum())


# --- PGD's silent success ---------------------------------------------------------------------------------------

class _Band(nn.Module):
    """Class 0 except while the first pixel is in (0.52, 0.56); the loss's gradient always pushes that pixel up,
    so PGD walks through the band and out of it: an adversarial iterate that the last iterate loses."""

    def forward(self, x):  # type: ignore[no-untyped-def]
        p = x.flatten(1)[:, 0]
        inside = ((p > 0.52) & (p < 0.56)).float()
        logit0 = (1 - 2 * inside) * 10 - 1e-3 * p
        return torch.stack([logit0, torch.zeros_like(logit0)], dim=1)


def test_pgd_keeps_a_success_it_walks_past() -> None:
    x = torch.full((16, 1, 2, 2), 0.5)
    y = torch.zeros(16, dtype=torch.long)
    res = evaluate(_Band(), x, y, "linf", eps=0.1, attack=AttackSpec("pgd", steps=20, step_size=0.01), seed=0)
    silent = res.extra["silent_successes"]
    assert silent > 0
    assert int((~res.robust_correct).sum()) == silent  # each one counted as not robust, and only those


# --- the reported attack against the reference attack, through the command line --------------------------------

@pytest.mark.slow
def test_a_far_too_weak_final_attack_is_caught(tmp_path: Path) -> None:
    proc = run_cli("eval", "--model", "smallcnn", "--threat", "linf", "--attack", "pgd", "--steps", "5",
                   "--check-budget", "100",
                   "--step-size", "0.0025", "--n-examples", "100", "--n-select", "20", "--betas", "0.9",
                   "--no-base-candidate", "--json", "--strict-checks", "--store", str(tmp_path / "s.sqlite"),
                   cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    result = json.loads(proc.stdout)
    checks = result["sanity_checks"]
    assert checks["binarization"]["arms"]["ct"]["verdict"] == "FAIL"
    weaker = [w for w in checks["warnings"] if "weaker than a 20-step APGD-CE" in w]
    assert len(weaker) == 2  # both arms
    # the reference attack's breaks count: nowhere near the 69% the weak attack alone reports
    assert result["ct"]["robust_accuracy"] < 0.3 and result["ct"]["robust_accuracy_white_box"] > 0.5


# --- ctrobust audit-attack ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_audit_attack_on_a_stored_run_stores_and_reports(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    proc = run_cli("eval", "--attack", "apgd-ce", "--steps", "10", "--n-examples", "30", "--n-select", "20",
                   "--betas", "0.9", "--no-base-candidate", "--store", str(store), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    proc = run_cli("audit-attack", "--store", str(store), "--run", run_id[:6], "--samples", "20", "--inner", "49",
                   "--square-queries", "50", "--fidelity-points", "10", "--trajectory-points", "10", "--json",
                   "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    audit = json.loads(proc.stdout)
    for arm in ("ct", "base"):
        attacks = audit["arms"][arm]["attacks"]
        assert {"apgd-ce", "apgd-margin", "fab", "square"} <= set(attacks)
        assert attacks["apgd-ce"]["verdict"] == "PASS", attacks["apgd-ce"]
        assert audit["arms"][arm]["unbounded"]["found"] == audit["arms"][arm]["unbounded"]["m"] > 0
        assert audit["trajectory"][arm]["unconstrained_failure"] == 0
    assert set(audit["grid"]) == {"0.9"}
    assert set(audit["fidelity"]["curves"]["autoattack"]) == {"0.9"}
    from ctrobust.results.store import open_store

    with open_store(store) as opened:
        assert opened.audits(run_id) == [audit]
    proc = run_cli("report", "--store", str(store), "--out", str(tmp_path / "html"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "html" / "figures").glob("*-audit0.png"))
    assert "attack audit of run" in (tmp_path / "html" / "index.html").read_text()


def test_audit_attack_refuses_bad_sizes_and_unknown_runs(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    proc = run_cli("audit-attack", "--store", str(store), cwd=tmp_path)
    assert_one_line_error(proc, "No results store")
    proc = run_cli("audit-attack", "--store", str(store), "--samples", "0", cwd=tmp_path)
    assert_one_line_error(proc, "--samples")


def test_counts_of_one_are_singular_in_every_check_message() -> None:
    """Issue 37 item 9: "fooled CT on 1 points" no more; a count's noun (and verb) follow the count."""
    import re

    from ctrobust.outputs import plural
    from ctrobust.results.evidence import AttackEvidence, SanityReport, Transfer, judge

    assert (plural(0, "point"), plural(1, "point"), plural(2, "point")) == ("0 points", "1 point", "2 points")
    report = SanityReport(transfer=Transfer(1, 1, 1, 0.5, 0.4),
                          attack_evidence={"base": AttackEvidence(rejected=1, unattacked=1)})
    judge(report, 1.0, "apgd-ce")
    text = "\n".join([*report.lines(), *report.warnings])
    assert "fooled CT on 1 point its own attack missed" in text and "1 clean-correct point of" in text
    assert not re.search(r"\b1 (points|samples|adversarial examples|cells|runs|clean-correct points)\b", text), text
    assert "was never attacked" in text and "1 adversarial example the attack" in text
