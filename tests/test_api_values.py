"""ctrobust.run and ctrobust.evaluate take Python values: every Python form of an option gives the plan its
command-line string gives, and a value of the wrong type is one OptionTypeError naming the option."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ctrobust
from conftest import assert_one_line_error, run_cli
from ctrobust.attacks.spec import AttackName, AutoAttackVersion
from ctrobust.datasets import DatasetName
from ctrobust.plan.config import EvalConfig
from ctrobust.plan.options import CONVERTERS, OptionTypeError, from_python
from ctrobust.plan.run_plan import CtuImpl, Device, Protocol, RunPlan, SweepMode
from ctrobust.threats import ThreatModel

TINY = ["--n-examples", "20", "--n-select", "20", "--attack", "apgd-ce", "--steps", "2", "--select-steps", "2"]


def _plan(**options: Any) -> RunPlan:
    return EvalConfig(**from_python({"model": "smallcnn", **options})).resolve()


# Each option: the command line's string, then the Python forms that must give the same plan.
FORMS: dict[str, tuple[Any, list[Any]]] = {
    "betas": ("0.8,0.9", [[0.8, 0.9], (0.8, 0.9), np.array([0.8, 0.9]), torch.tensor([0.8, 0.9]),
                          torch.tensor([0.8, 0.9], dtype=torch.float64), np.array([0.8, 0.9], dtype=np.float32)]),
    "eps": (0.05, [Fraction(1, 20), np.float64(0.05), torch.tensor(0.05, dtype=torch.float64), "1/20", 0.05]),
    "threat": ("l2", [ThreatModel.L2, "L2"]),
    "dataset": ("fashion-mnist", [DatasetName.FASHION_MNIST, "FMNIST"]),
    "attack": ("apgd-ce", [AttackName.APGD_CE]),
    "select_attack": ("apgd-ce", [AttackName.APGD_CE]),
    "aa_version": ("plus", [AutoAttackVersion.PLUS]),
    "protocol": ("paper", [Protocol.PAPER]),
    "sweep": ("halving", [SweepMode.HALVING]),
    "device": ("cpu", [torch.device("cpu"), Device.CPU]),
    "ctu": ("eager", [CtuImpl.EAGER]),
    "n_examples": (10, [np.int64(10), torch.tensor(10), 10.0]),
    "seed": (3, [np.int32(3)]),
    "beta_batch": ("2", [2, np.int64(2)]),
    "data_dir": ("/tmp/d", [Path("/tmp/d")]),
}


@pytest.mark.parametrize(("option", "python"), [(o, p) for o, (_, forms) in FORMS.items() for p in forms],
                         ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_every_python_form_gives_the_plan_of_the_cli_string(option: str, python: Any) -> None:
    cli = FORMS[option][0]
    extra: dict[str, Any] = {"protocol": "heldout"} if option == "sweep" else {}
    if option == "protocol":
        extra["select_attack"] = None
    assert _plan(**{option: python}, **extra) == _plan(**{option: cli}, **extra)


def test_normalisation_and_corruption_lists_from_python() -> None:
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 10))
    for mean in ((0.286,), [0.286], np.array([0.286]), torch.tensor([0.286])):
        plan = EvalConfig(**from_python({"model": "mine", "dataset": "fashion-mnist", "mean": mean,
                                         "std": [0.353]})).resolve(module=module)
        assert plan.mean == (0.286,) and plan.std == (0.353,)
    for corruptions, severities in ((["fog", "snow"], [1, 3]), (("fog", "snow"), np.array([1, 3])), ("fog,snow", "1,3")):
        plan = _plan(threat=ThreatModel.CORRUPTIONS, corruptions=corruptions, severities=severities)
        assert plan.corruptions == ("fog", "snow") and plan.severities == (1, 3)


def test_a_float32_tensor_of_betas_is_the_betas_it_prints() -> None:
    assert _plan(betas=torch.tensor([0.8, 0.85])).betas == (0.8, 0.85)  # not 0.800000011920929


# One bad value per option: each must be refused naming the option.
BAD: dict[str, Any] = {
    "dataset": 10, "checkpoint": 3.5, "model_dir": ["a"], "zoo_threat": 1, "trust_checkpoint": "yes",
    "mean": {"r": 0.5}, "std": [0.3, "a"], "data_dir": 7, "threat": 2, "eps": [0.1], "attack": 1.5,
    "aa_version": 3, "steps": 2.5, "restarts": "1", "step_size": "big", "corruptions": [1, 2], "severities": [1.5],
    "select_attack": object(), "select_steps": True, "betas": [[0.8]], "no_base_candidate": 1,
    "beta_batch": 1.5, "sweep": 0, "protocol": 4, "n_examples": "10", "n_select": 2.5, "seed": False,
    "device": 0, "batch_size": [64], "check_budget": "lots", "executor": 2, "ray_address": 5, "ctu": 1, "out": 3,
    "store": 3.0, "json": "true", "no_progress": 0, "strict_checks": "no", "model": 12,
}


def test_every_option_has_a_python_type_and_a_bad_example() -> None:
    assert set(CONVERTERS) == set(EvalConfig.__dataclass_fields__) == set(BAD)


@pytest.mark.parametrize("option", sorted(BAD))
def test_a_wrong_type_names_the_option(option: str) -> None:
    with pytest.raises(OptionTypeError, match=rf"^Expected {option} to be .*, but got "):
        from_python({option: BAD[option]})


@pytest.mark.parametrize(("option", "value"), [("betas", {"a": 1}), ("eps", "eight"), ("threat", 2),
                                               ("n_examples", 2.5), ("device", 0), ("mean", ["a"])])
def test_ctrobust_run_refuses_a_wrong_type_before_any_work(option: str, value: Any, tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    with pytest.raises(OptionTypeError, match=option) as info:
        ctrobust.run("smallcnn", store=store, **{option: value})
    assert isinstance(info.value, ctrobust.CtrobustError) and isinstance(info.value, TypeError)
    assert not store.exists()


def test_run_refuses_what_only_the_command_line_does() -> None:
    with pytest.raises(ctrobust.CtrobustError, match="executor"):
        ctrobust.run("smallcnn", executor="ray")


def test_evaluate_takes_python_values() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    want = ctrobust.evaluate(net, x, y, "l2", eps=0.5, attack="apgd-ce", seed=1, device="cpu")
    got = ctrobust.evaluate(net, x, y, ThreatModel.L2, eps=Fraction(1, 2), attack=AttackName.APGD_CE,
                            seed=np.int64(1), device=torch.device("cpu"))
    assert torch.equal(got.robust_correct, want.robust_correct) and got.eps == want.eps == 0.5
    with pytest.raises(OptionTypeError, match="eps"):
        ctrobust.evaluate(net, x, y, "l2", eps=[0.5])
    with pytest.raises(OptionTypeError, match="threat"):
        ctrobust.evaluate(net, x, y, 2, eps=0.5)  # type: ignore[arg-type]


def test_help_lists_every_option_with_its_type() -> None:
    doc = ctrobust.run.__doc__ or ""
    for option in ("betas", "eps", "threat", "device", "mean", "n_examples", "protocol"):
        assert f"``{option}`` ({CONVERTERS[option][1]}" in doc


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--eps", "abc", "--eps"), ("--n-examples", "2.5", "--n-examples"), ("--betas", "x,y", "--betas"),
    ("--threat", "l3", "threat"), ("--device", "tpu", "--device"), ("--seed", "-1", "--seed"),
    ("--mean", "a", "--mean"), ("--beta-batch", "1.5", "--beta-batch"), ("--protocol", "best", "--protocol"),
])
def test_the_cli_refuses_a_bad_value_in_one_line(flag: str, value: str, needle: str, tmp_path: Path) -> None:
    proc = run_cli("eval", *TINY, flag, value, "--store", str(tmp_path / "s.sqlite"))
    assert_one_line_error(proc, needle)


def test_python_values_become_typed_values_not_command_line_text() -> None:
    """A Python value is converted once into the type EvalConfig holds; nothing goes through the command line's
    strings (which EvalConfig accepts as well, for the command line itself)."""
    values = from_python({"betas": np.array([0.8, 0.9]), "mean": [0.5], "corruptions": ("fog", "snow"),
                          "severities": [1, 3], "beta_batch": np.int64(2), "threat": ThreatModel.L2})
    assert values == {"betas": (0.8, 0.9), "mean": (0.5,), "corruptions": ("fog", "snow"), "severities": (1, 3),
                      "beta_batch": 2, "threat": ThreatModel.L2}
    assert not any(isinstance(v, str) for k, v in values.items() if k != "threat")


def test_a_toml_list_gives_the_plan_of_the_command_line_string(tmp_path: Path) -> None:
    """TOML values go through the same conversion as Python values: betas = [0.8, 0.9] is betas = '0.8,0.9'."""
    from ctrobust.plan.reproduce import load_config

    plans = []
    for betas in ("[0.8, 0.9]", "'0.8,0.9'"):
        path = tmp_path / "grid.toml"
        path.write_text(f"[defaults]\nbetas = {betas}\nbeta_batch = 2\n[[grid]]\nmodels = ['smallcnn']\n")
        (unit,) = load_config(str(path)).units
        plans.append(unit.plan)
    assert plans[0] == plans[1] and plans[0].betas == (0.8, 0.9) and plans[0].betas_per_pass == 2


@pytest.mark.parametrize(("option", "value", "keyword"), [("n_examples", 0, "n_examples"), ("betas", [1.5], "betas"),
                                                         ("mean", [0.5], "mean")])
def test_errors_to_a_python_caller_name_the_keyword_and_the_command_line_keeps_its_flag(
        option: str, value: Any, keyword: str) -> None:
    """One message source, two spellings: ``n_examples`` to ``ctrobust.run``, ``--n-examples`` on the command line."""
    with pytest.raises(ctrobust.CtrobustError) as info:
        ctrobust.run("smallcnn", **{option: value})
    message = str(info.value)
    assert keyword in message and "--" not in message, message
    with pytest.raises(ctrobust.CtrobustError) as cli:
        EvalConfig(**from_python({"model": "smallcnn", option: value})).resolve()
    assert f"--{keyword.replace('_', '-')}" in str(cli.value)
