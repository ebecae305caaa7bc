"""The checks cost what the plan declares: sizes from the check budget and the run's own outcomes, NOT RUN with a
reason where a minimum does not fit, and the same per-point outcomes as before the budget existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ctrobust
from conftest import REPO
from ctrobust.attacks.spec import AttackSpec
from ctrobust.checks import binarization
from ctrobust.checks.budget import SIZED, final_attack_work, size_checks
from ctrobust.errors import CtrobustError
from ctrobust.plan.config import EvalConfig
from ctrobust.plan.run_plan import DEFAULT_CHECK_SHARE
from ctrobust.threats import ThreatModel

AA = AttackSpec("autoattack")
LINF = ThreatModel.LINF


def _sizes(share: float, n: int = 1000, clean: int = 940, robust: int = 130, spec: AttackSpec = AA):  # type: ignore[no-untyped-def]
    work = final_attack_work(spec, n, [(clean, robust), (clean, robust)], 10, LINF)
    return size_checks(share, spec, work, n, robust, binarization.per_sample_work(spec, LINF), "", LINF)


def test_the_default_run_gets_every_check_at_full_size() -> None:
    """The README's main run (1000 points; base 940 clean / 118 robust, CT 935 / 149) at the default share: every
    check at full size (the reference's APGD-DLR beside APGD-CE raised the share from 0.05 to 0.06)."""
    work = final_attack_work(AA, 1000, [(940, 118), (935, 149)], 10, LINF)
    sizes = size_checks(DEFAULT_CHECK_SHARE, AA, work, 1000, 149, binarization.per_sample_work(AA, LINF), "", LINF)
    assert (sizes.reference_points, sizes.binarization_samples) == (100, 100)
    assert sizes.reattack_points == 0  # AutoAttack's entry: no re-attack
    assert not sizes.skipped and sizes.planned <= sizes.budget


def test_a_small_run_gets_what_its_budget_affords_and_says_what_it_skipped() -> None:
    sizes = _sizes(0.05, n=100, clean=92, robust=13)
    assert sizes.planned <= sizes.budget
    assert SIZED["budget sweep"][1] <= sizes.reference_points < 100
    assert sizes.binarization_samples == 0
    assert "cannot afford" in sizes.skipped["binarization"] and "--check-budget" in sizes.skipped["binarization"]
    more = _sizes(1.0, n=100, clean=92, robust=13)
    assert more.binarization_samples >= SIZED["binarization"][1] and more.reference_points == 100


def test_sizes_grow_with_the_share_and_a_zero_budget_runs_no_sized_check() -> None:
    shares = [0.0, 0.01, 0.05, 0.2, 1.0]
    sized = [_sizes(s, n=200, clean=180, robust=30) for s in shares]
    for a, b in zip(sized, sized[1:]):
        assert b.reference_points >= a.reference_points and b.binarization_samples >= a.binarization_samples
    zero = sized[0]
    assert zero.reference_points == zero.binarization_samples == 0
    assert set(zero.skipped) == {"budget sweep", "binarization"}


def test_the_reattack_is_sized_for_attacks_whose_entry_asks_for_it() -> None:
    spec = AttackSpec("apgd-ce", steps=20)
    cheap = _sizes(0.05, n=1000, clean=940, robust=300, spec=spec)  # 20 steps: the checks would cost more than it
    assert cheap.reference_points == cheap.reattack_points == cheap.binarization_samples == 0
    sizes = _sizes(1.0, n=1000, clean=940, robust=300, spec=spec)
    assert 0 < sizes.reattack_points <= 100 and sizes.reference_points == 100
    assert _sizes(1.0, spec=AA).reattack_points == 0  # AutoAttack's entry: no re-attack


def test_an_attack_with_no_binarized_form_is_skipped_with_its_entrys_reason() -> None:
    spec = AttackSpec("apgd-dlr")
    work = final_attack_work(spec, 1000, [(940, 130), (940, 130)], 10, LINF)
    sizes = size_checks(0.05, spec, work, 1000, 130, 0.0, "the DLR loss compares three logits", LINF)
    assert sizes.binarization_samples == 0 and sizes.skipped["binarization"] == "the DLR loss compares three logits"


def test_the_budget_is_part_of_the_plan_and_checked() -> None:
    base = EvalConfig(model="smallcnn").resolve()
    other = EvalConfig(model="smallcnn", check_budget=0.2).resolve()
    assert base.identity()["check_budget"] == 0.06 and other.identity() != base.identity()
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(CtrobustError, match="check_budget"):
            EvalConfig(model="smallcnn", check_budget=bad).resolve()


@pytest.mark.slow
def test_a_100_point_run_keeps_its_per_point_outcomes(tmp_path: Path) -> None:
    """The per-point outcomes of a 100-point AutoAttack run made before the attack registry and the check budget
    (tests/data: the command and commit it came from), on both arms, worst case included."""
    before = json.loads((REPO / "tests" / "data" / "outcomes_run100_a2c1127.json").read_text())
    assert before["command"].startswith("ctrobust eval --model smallcnn --threat linf --n-examples 100")
    result = ctrobust.run("smallcnn", threat="linf", n_examples=100, n_select=100, betas=[0.8, 0.9],
                          no_base_candidate=True, store=tmp_path / "s.sqlite")
    assert result.beta == before["beta"]
    for arm in ("base", "ct"):
        for outcome in ("clean", "robust", "robust_white_box"):
            assert list(result.per_example[arm][outcome]) == before["per_example"][arm][outcome], (arm, outcome)
    assert result.sanity is not None and result.sanity.sizes["reference_points"] < 100  # the budget applied


@pytest.mark.parametrize("share", [0.01, 0.06, 1.0])
def test_the_checks_parts_add_up_to_what_they_plan(share: float) -> None:
    """The bar revises the checks' remaining work from their parts after each check: the parts (per-arm checks
    counted on both arms) are the plan, and none of them is kept with the result."""
    from ctrobust.checks.budget import PER_ARM

    for spec in (AA, AttackSpec("apgd-ce", steps=20)):
        sizes = _sizes(share, spec=spec)
        parts = sum(sizes.parts.values()) + sum(v for k, v in sizes.parts.items() if k in PER_ARM)
        assert parts == pytest.approx(sizes.planned)
        assert "parts" not in sizes.to_dict()


def test_the_sanity_checks_tell_the_bar_each_checks_work_and_what_follows_it() -> None:
    from ctrobust.checks.budget import CheckSizes
    from ctrobust.checks.sanity import SanityReport, _Clock, _Isolated

    report = SanityReport()
    parts = {"transfer": 10.0, "budget sweep": 30.0, "binarization": 50.0}
    heard: list[tuple[float, float]] = []
    isolated = _Isolated(report, _Clock(report.seconds), CheckSizes(0.1, 0, 0, 0, 0, 0, {}, parts).parts,
                         lambda units, after: heard.append((units, after)))
    assert isolated.left == 120.0  # the budget sweep runs on both arms
    with isolated("transfer"):
        pass
    for _arm in range(2):
        with isolated("budget sweep", "budget"):
            pass
    with isolated("logit statistics"):  # a check with no planned part: nothing to say
        pass
    with isolated("binarization"):
        raise RuntimeError("a check that crashes is isolated as before")
    assert heard == [(10.0, 110.0), (30.0, 80.0), (30.0, 50.0), (50.0, 0.0)] and "binarization" in report.not_run


def test_the_binarization_tests_phases_are_parts_that_add_up_to_its_plan() -> None:
    from ctrobust.checks.sanity import BINARIZATION_ARMS, _phases

    sizes = _sizes(0.06)
    per_phase = binarization.phase_work(AA, LINF)
    units = {phase: sizes.binarization_samples * w for phase, w in per_phase.items()}
    heard: list[tuple[float, float]] = []
    tell = _phases(lambda u, after: heard.append((u, after)), 7.0)
    assert tell is not None
    for arm in BINARIZATION_ARMS:
        for phase in per_phase:
            tell(arm, phase, units)
    assert heard[0][0] + heard[0][1] == pytest.approx(sizes.parts["binarization"] + 7.0)  # all of it, then the rest
    assert heard[-1] == (units["random baseline"], 7.0)
    assert [u for u, _ in heard] == [units[p] for _ in BINARIZATION_ARMS for p in per_phase]
