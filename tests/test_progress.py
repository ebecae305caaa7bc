"""The progress bar counts work: the meter, the cost model against real attacks, AutoAttack's log, -q / -v."""

from __future__ import annotations

import logging

import pytest
import torch

from conftest import run_cli
from ctrobust.api import evaluate
from ctrobust.attacks.cost import attack_work, autoattack_attack_work, autoattack_remaining
from ctrobust.attacks.registry import GRAD_WEIGHT
from ctrobust.attacks.spec import AttackSpec
from ctrobust.ct import curvature_tuned
from ctrobust.models import load_model
from ctrobust.stages.progress import AutoAttackWatcher, RunProgress, WorkMeter
from ctrobust.threats import ThreatModel

LINF = ThreatModel.LINF


def test_meter_weights_backpropagated_calls() -> None:
    counted: list[float] = []
    model = torch.nn.Linear(4, 2)
    meter = WorkMeter(counted.append)
    with meter.watching(model):
        with torch.no_grad():
            model(torch.zeros(5, 4))
        model(torch.zeros(3, 4, requires_grad=True)).sum().backward()
    model(torch.zeros(7, 4))  # outside: not counted
    assert counted == [5.0, 3 * GRAD_WEIGHT]


def test_run_progress_total_follows_the_plan() -> None:
    progress = RunProgress("t", disable=True)
    progress.plan("a", 100)
    progress.plan("b", 50)
    progress.start("a", "stage a")
    progress.add_work(30)
    assert progress.total == 150  # 30 done + 70 left of a + 50 of b
    progress.revise_stage(10)  # a turns out smaller
    assert progress.total == 90
    progress.add_work(200)  # a turns out larger: never more than 100%
    assert progress.done <= progress.total
    progress.finish()
    progress.skip("b")  # b was in the store
    assert progress.total == progress.done == 230


def test_watcher_reads_autoattack_log() -> None:
    events: list[tuple[str, int, int]] = []
    logger = logging.getLogger("auto-attack")
    with AutoAttackWatcher(1000, lambda a, left, n: events.append((a, left, n))).attached():
        logger.debug("initial accuracy: 94.00%")
        logger.debug("running apgd-t")
        logger.debug("robust accuracy after APGD-T: 14.30% (total time 10.0 s)")
        logger.debug("apgd-t - 1/1 - 3 out of 146 successfully perturbed")  # not an event
    assert events == [("clean", 940, 1000), ("apgd-t", 940, 1000), ("after apgd-t", 143, 1000)]


def test_remaining_work_after_each_attack() -> None:
    everything = autoattack_remaining("standard", "apgd-ce", True, 100, 10, expected_survivors=20, threat=LINF)
    assert everything == pytest.approx(autoattack_attack_work("apgd-ce", 100, threat=LINF)
                                       + sum(autoattack_attack_work(a, 20, threat=LINF)
                                             for a in ("apgd-t", "fab-t", "square")))
    assert autoattack_remaining("standard", "square", False, 12, threat=LINF) == 0
    assert autoattack_remaining("standard", "fab-t", True, 12, threat=LINF) == pytest.approx(
        autoattack_attack_work("fab-t", 12, threat=LINF) + autoattack_attack_work("square", 12, threat=LINF))


@pytest.mark.slow
@pytest.mark.parametrize("spec", [AttackSpec("apgd-ce", steps=5), AttackSpec("pgd", steps=4), AttackSpec("autoattack")])
def test_cost_model_matches_counted_work(spec: AttackSpec, fmnist_test) -> None:
    """The estimate, given the true fractions, is within 15% of what the meter counts in the real attack.

    Time factors (FAB, Square) are set to 1 here: the model's passes themselves are compared.
    """
    x, y = fmnist_test
    x, y = x[:40], y[:40]
    ct = curvature_tuned(load_model("smallcnn").model, 0.9, impl="eager")
    counted: list[float] = []
    meter = WorkMeter(counted.append)
    from ctrobust.attacks import cost

    factors, cost.TIME_FACTOR = cost.TIME_FACTOR, {}
    try:
        with meter.watching(ct):
            res = evaluate(ct, x, y, "linf", eps=0.05, attack=spec, seed=0, batch_size=500)
        after_first = res.extra.get("robust_accuracy_after", {}).get("apgd-ce", res.robust_accuracy)
        estimate = attack_work(spec, len(x), res.clean_accuracy, float(after_first), threat=LINF)
    finally:
        cost.TIME_FACTOR = factors
    assert sum(counted) == pytest.approx(estimate, rel=0.15)


@pytest.mark.slow
def test_quiet_and_verbose(tmp_path) -> None:
    args = ["eval", "--n-examples", "10", "--n-select", "10", "--betas", "0.9", "--attack", "autoattack",
            "--select-steps", "2", "--out", str(tmp_path / "out")]
    quiet = run_cli(*args, "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == ""
    verbose = run_cli(*args, "-v", "--out", str(tmp_path / "out2"), "--store", str(tmp_path / "v.sqlite"))
    assert verbose.returncode == 0, verbose.stderr
    assert "initial accuracy" in verbose.stderr  # AutoAttack's own log, passed through
    assert "still robust" in verbose.stderr or "running apgd-ce" in verbose.stderr


def test_the_final_attacks_plan_weighs_the_ct_arm_by_the_chance_it_is_attacked() -> None:
    """While the sweep may still choose beta = 1 (the original model: one arm attacked), the CT arm's final attack
    counts half; once beta = 1 is scored it counts fully or not at all; with no beta = 1 candidate, fully."""
    from ctrobust.stages.eta import WorkPlan

    assert WorkPlan.ct_chance([0.8, 0.9], {}) == 1.0
    assert WorkPlan.ct_chance([0.8, 0.9, 1.0], {}) == 0.5
    assert WorkPlan.ct_chance([0.8, 0.9, 1.0], {0.8: 0.2, 0.9: 0.25}) == 0.5
    assert WorkPlan.ct_chance([0.8, 0.9, 1.0], {0.8: 0.2, 0.9: 0.25, 1.0: 0.1}) == 1.0
    assert WorkPlan.ct_chance([0.8, 0.9, 1.0], {0.8: 0.2, 0.9: 0.25, 1.0: 0.25}) == 0.0  # ties go to the larger beta


def test_a_part_of_a_stage_revises_what_the_stage_has_left() -> None:
    """Each check (and each phase of the binarization test) says, as it starts, its planned work and what follows
    it: the stage's remaining work becomes that, whatever the stage estimated or did before."""
    progress = RunProgress("t", disable=True)
    progress.start("sanity", "checks", estimate=1000.0)
    progress.add_work(100.0)
    progress.part(400.0, 200.0)
    assert progress.total == pytest.approx(100.0 + 600.0)
    progress.add_work(500.0)  # the part took more than planned: never more than 100%
    assert progress.total >= progress.done
    progress.part(50.0, 0.0)
    assert progress.total == pytest.approx(600.0 + 50.0)
    progress.finish()
    assert progress.total == pytest.approx(progress.done)
