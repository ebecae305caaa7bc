"""An attack is one registry entry: nothing outside the registry asks which attack it is, and a registered attack is
the one every check runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from conftest import REPO
from ctrobust.api import evaluate
from ctrobust.attacks.autoattack import apgd_ce
from ctrobust.attacks.evaluation import attack_and_check
from ctrobust.attacks.registry import AttackEntry, attack_names, entry, register, registered
from ctrobust.attacks.runners import BinarizedAttack, gradient_runner
from ctrobust.attacks.spec import AttackName, AttackSpec
from ctrobust.cell import Arm
from ctrobust.checks.budget import CheckSizes
from ctrobust.checks.sanity import run_sanity_checks
from ctrobust.ct import curvature_tuned
from ctrobust.errors import CtrobustError
from ctrobust.models import load_model
from ctrobust.threats import ThreatModel

FULL = CheckSizes(share=1.0, budget=1e9, planned=0.0, reference_points=100, reattack_points=100,
                  binarization_samples=20)  # every check at its size, whatever the budget
PACKAGE = REPO / "ctrobust"
# AutoAttack's own stages (its sub-attacks "apgd-ce", "apgd-t", "fab-t", "square" inside one AutoAttack run) are
# not ctrobust's attacks: the functions that drive and cost them are allowed to name them.
# The same goes for the module name "autoattack" that RobustBench imports (compat/).
NOT_CTROBUST_ATTACKS = {("attacks/cost.py", "autoattack_attack_work"), ("attacks/staged.py", "_perturb"),
                        ("compat/robustbench_import.py", "_alias_autoattack")}


def _name_checks(path: Path, names: set[str]) -> list[str]:
    """Every ``AttackName.X``, comparison with an attack's name and name-prefix test in one file."""
    tree = ast.parse(path.read_text())
    relative = str(path.relative_to(PACKAGE))
    found: list[str] = []

    def is_name(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        allowed = (relative, function) in NOT_CTROBUST_ATTACKS
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "AttackName":
            found.append(f"{relative}:{node.lineno} AttackName.{node.attr}")
        elif isinstance(node, ast.Compare) and not allowed:
            operands = [node.left, *node.comparators]
            for operand in operands:
                items = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                if any(is_name(item) for item in items):
                    found.append(f"{relative}:{node.lineno} compares with an attack's name")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
              and node.args and isinstance(node.args[0], ast.Constant)
              and any(str(n).startswith(str(node.args[0].value)) for n in names)):
            found.append(f"{relative}:{node.lineno} tests an attack name's prefix")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_no_code_outside_the_registry_asks_which_attack_it_is() -> None:
    names = set(attack_names())
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "registry.py" or path.parent.name != "attacks"
             for hit in _name_checks(path, names)]
    assert not found, "attack behaviour switched on names outside attacks/registry.py:\n" + "\n".join(found)


def test_the_ast_check_finds_what_it_forbids(tmp_path: Path) -> None:
    """The check above could pass by finding nothing: it must find each forbidden form."""
    sample = PACKAGE / "_sample_for_test.py"
    sample.write_text('def f(spec, label):\n    if spec.name is AttackName.PGD:\n        return 1\n'
                      '    if spec.name == "apgd-ce" or spec.name in ("pgd", "x"):\n        return 2\n'
                      '    return label.startswith("pgd")\n')
    try:
        found = _name_checks(sample, set(attack_names()))
    finally:
        sample.unlink()
    assert len(found) == 4, found


def test_every_shipped_attack_is_an_entry_and_names_parse() -> None:
    assert set(attack_names()) == {a.value for a in AttackName}
    assert AttackSpec("APGD_DLR").name == "apgd-dlr"
    assert AttackSpec("apgd-dlr").steps == entry("apgd-dlr").default_steps
    with pytest.raises(CtrobustError, match="Did you mean"):
        AttackSpec("apgd-dl")
    with pytest.raises(CtrobustError, match="already registered"):
        register(entry("pgd"))


def test_apgd_dlr_runs_as_a_final_attack_and_is_not_fooled_by_a_logit_scale(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    """APGD-DLR through its entry: a real attack (it breaks points) whose loss is invariant to the logits' scale,
    so dividing the logits by 1000 leaves its per-point outcomes as they were (up to float rounding)."""
    model = load_model("smallcnn").model.eval()
    x, y = fmnist_test[0][:24], fmnist_test[1][:24]
    plain = evaluate(model, x, y, "linf", eps=0.05, attack="apgd-dlr", seed=0)

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return self.inner(v) / 1000

    scaled = evaluate(Scaled(), x, y, "linf", eps=0.05, attack=AttackSpec("apgd-dlr"), seed=0)
    assert plain.attack["name"] == "apgd-dlr" and plain.attack["steps"] == 100
    assert plain.robust_accuracy < plain.clean_accuracy  # it broke points
    assert abs(int(plain.robust_correct.sum()) - int(scaled.robust_correct.sum())) <= 1


def final_arms(ct, x, y, spec: AttackSpec, betas: tuple[float, ...]) -> dict[float, Arm]:  # type: ignore[no-untyped-def]
    """Each arm's final attack (Linf 0.05), as the checks receive it."""
    arms = {}
    for beta in betas:
        ct.beta = beta
        res = attack_and_check(ct, x, y, ThreatModel.LINF, 0.05, spec, seed=0, batch_size=64)
        arms[beta] = Arm(beta, res.scored())
    return arms


def _fake_entry(calls: list[tuple[str, int]]) -> AttackEntry:
    """An attack that is APGD-CE underneath and records every call, as run and on the binarized model."""

    def step(model, x, y, eps, threat, spec, seed, offset):  # type: ignore[no-untyped-def]
        calls.append(("run", spec.steps))
        return apgd_ce(model, x, y, eps, threat, spec.steps, seed), 0

    def on_binarized(spec: AttackSpec, threat: ThreatModel, seed: int) -> BinarizedAttack:
        def attack(model, x, y, eps):  # type: ignore[no-untyped-def]
            calls.append(("binarized", spec.steps))
            return apgd_ce(model, x, y, eps, threat, spec.steps, seed)

        return BinarizedAttack(attack, "fake", spec.steps or 0, "the fake attack itself")

    import sys

    module = sys.modules[__name__]
    module._fake_runner = gradient_runner(step)  # type: ignore[attr-defined]
    module._fake_on_binarized = on_binarized  # type: ignore[attr-defined]
    return AttackEntry("fake-attack", "a test's attack", runner=f"{__name__}:_fake_runner",
                       work="ctrobust.attacks.cost:apgd_work", default_steps=3,
                       binarized=f"{__name__}:_fake_on_binarized", reattack=True)


def test_a_registered_attack_is_the_one_the_binarization_test_and_the_reattack_check_run(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[str, int]] = []
    model = load_model("smallcnn").model.eval()
    x, y = fmnist_test[0][:30], fmnist_test[1][:30]
    ct = curvature_tuned(model, 0.8, impl="eager")
    with registered(_fake_entry(calls)):
        spec = AttackSpec("fake-attack")
        assert spec.steps == 3 and spec.label() == "fake-attack-3steps"
        arms = final_arms(ct, x, y, spec, (1.0, 0.8))
        assert calls and all(c == ("run", 3) for c in calls)
        calls.clear()
        _, _, report = run_sanity_checks(ct, 0.8, x, y, ThreatModel.LINF, 0.05, 0, 64, torch.device("cpu"), None,
                                         arms[1.0], arms[0.8], spec, FULL)
    assert ("run", 6) in calls  # the re-attack: the registered attack with twice its steps
    assert report.incomplete is not None and report.incomplete.steps == 6
    assert ("binarized", 3) in calls  # the binarization test ran the registered attack's binarized form
    assert report.binarization is not None
    assert {arm.attack for arm in report.binarization.arms.values()} == {"fake"}
    assert report.binarization.note == "the fake attack itself"
    with pytest.raises(CtrobustError, match="Unknown attack"):
        AttackSpec("fake-attack")  # gone with its block


def test_an_attack_that_cannot_run_binarized_gets_not_run_with_its_reason(fmnist_test) -> None:  # type: ignore[no-untyped-def]
    model = load_model("smallcnn").model.eval()
    x, y = fmnist_test[0][:20], fmnist_test[1][:20]
    ct = curvature_tuned(model, 0.8, impl="eager")
    spec = AttackSpec("apgd-dlr", steps=5)
    arms = final_arms(ct, x, y, spec, (1.0, 0.8))
    _, _, report = run_sanity_checks(ct, 0.8, x, y, ThreatModel.LINF, 0.05, 0, 64, torch.device("cpu"), None,
                                     arms[1.0], arms[0.8], spec, FULL)
    assert report.binarization is not None and report.binarization.arms == {}
    assert "DLR loss compares three logits" in (report.binarization.note or "")
    assert report.incomplete is not None and report.incomplete.steps == 10  # the re-attack applies (its entry says so)
