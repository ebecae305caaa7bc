"""Splits, beta grids, threat names and eps: the small parsers the CLI relies on."""

from __future__ import annotations

import pytest

from ctrobust.data import make_splits
from ctrobust.errors import CtrobustError
from ctrobust.plan.selection import PAPER_BETAS, choose_beta, parse_betas
from ctrobust.threats import ThreatModel, check_eps, default_eps, parse_threat


def test_eval_split_is_first_n_and_selection_is_disjoint() -> None:
    s = make_splits(10000, 1000, 500, seed=3)
    assert s.eval_indices == list(range(1000))
    assert len(s.select_indices) == 500 and min(s.select_indices) >= 1000
    assert not set(s.eval_indices) & set(s.select_indices)
    assert make_splits(10000, 1000, 500, seed=3) == s
    assert make_splits(10000, 1000, 500, seed=4) != s


def test_paper_protocol_selects_on_eval_split() -> None:
    s = make_splits(100, 10, 5, seed=0, protocol="paper")
    assert s.select_indices == s.eval_indices


def test_split_too_large_is_an_error() -> None:
    with pytest.raises(CtrobustError, match="n-select"):
        make_splits(100, 90, 20, seed=0)


def test_paper_grid() -> None:
    assert parse_betas("0.70:0.99:0.01") == list(PAPER_BETAS)
    assert len(PAPER_BETAS) == 30 and PAPER_BETAS[0] == 0.7 and PAPER_BETAS[-1] == 0.99


def test_beta_list_and_errors() -> None:
    assert parse_betas("0.9, 0.8,0.9") == [0.8, 0.9]
    for bad in ("1.2", "-0.1,0.5", "a,b", "0.5:0.9:0", "nan"):
        with pytest.raises(CtrobustError):
            parse_betas(bad)


def test_choose_beta_ties_go_to_larger_beta() -> None:
    assert choose_beta({0.8: 0.3, 0.85: 0.31, 0.9: 0.31, 0.95: 0.2}) == 0.9


@pytest.mark.parametrize("name", ["linf", "Linf", "LINF", "l2", "L2"])
def test_threat_names(name: str) -> None:
    assert parse_threat(name) in (ThreatModel.LINF, ThreatModel.L2)


def test_unknown_threat_suggests() -> None:
    with pytest.raises(CtrobustError, match="Did you mean 'linf'"):
        parse_threat("lin")


def test_default_eps() -> None:
    assert default_eps("cifar10", ThreatModel.LINF) == 8 / 255
    assert default_eps("cifar10", ThreatModel.L2) == 0.5
    assert default_eps("imagenet", ThreatModel.LINF) == 4 / 255


@pytest.mark.parametrize("bad", [0, -0.1, float("inf"), "x"])
def test_bad_eps(bad: object) -> None:
    with pytest.raises(CtrobustError, match="eps"):
        check_eps(bad)  # type: ignore[arg-type]


def test_the_model_name_is_parsed_once_into_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """resolve() parses the model's name into its source and name; loading the subject reads that, not the name
    again, and the parsed name adds nothing to the run's identity (the name and source are in it already)."""
    from ctrobust.models import registry
    from ctrobust.models.source import ModelName, ModelSource
    from ctrobust.plan.config import EvalConfig
    from ctrobust.stages.subject import load_subject

    plan = EvalConfig(model=" smallcnn", n_examples=10, n_select=10).resolve()
    assert plan.model_name == ModelName(ModelSource.BUILTIN, "smallcnn")
    assert "model_name" not in plan.identity()

    def parsed_again(raw: str) -> ModelName:
        raise AssertionError(f"the model name {raw!r} was parsed again after the plan")

    monkeypatch.setattr(registry, "parse_model_name", parsed_again)
    assert load_subject(plan).loaded.name == "smallcnn"
