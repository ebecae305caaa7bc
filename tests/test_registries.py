"""Every registry covers its enum, and what is generated from an enum (CLI choices, the schema) matches it.

A threat model, attack or model source added to its enum without its registry entry fails here, not as
a KeyError in the middle of a run.
"""

from __future__ import annotations

import argparse
import json
import tomllib

import pytest

from conftest import REPO
from ctrobust.attacks.cost import autoattack_attack_work
from ctrobust.attacks.norms import NORM_BALLS
from ctrobust.attacks.registry import entry
from ctrobust.attacks.spec import AA_VERSIONS, ATTACKS, AttackName
from ctrobust.cli.main import build_parser
from ctrobust.data.registry import DATASETS
from ctrobust.datasets import ALIASES, DatasetName, parse_dataset
from ctrobust.executors import EXECUTORS, GRID_RUNNERS
from ctrobust.models.registry import SOURCES
from ctrobust.models.source import ModelSource
from ctrobust.plan.run_plan import CtuImpl, Device, Executor, Protocol
from ctrobust.stages.scoring import CorruptionScorer, NormScorer, scorer_for
from ctrobust.threats import DEFAULT_EPS, THREAT_CHOICES, ThreatModel


def test_every_norm_ball_threat_has_its_geometry_scorer_and_fashion_mnist_eps() -> None:
    for threat in ThreatModel:
        if threat.is_norm_bounded:
            assert threat in NORM_BALLS, f"{threat} has no entry in attacks/norms.py"
            assert scorer_for(threat) is NormScorer
            assert ("fashion-mnist", threat) in DEFAULT_EPS, f"{threat} has no default eps for the offline dataset"
        else:
            assert scorer_for(threat) is CorruptionScorer
    assert set(NORM_BALLS) == {t for t in ThreatModel if t.is_norm_bounded}


def test_every_attack_has_a_runner_and_a_cost() -> None:
    assert set(ATTACKS) == set(AttackName)  # the shipped attacks are the enum's, each an entry
    for name in ATTACKS:
        e = entry(name)
        assert callable(e.load(e.runner)) and callable(e.load(e.work))
        assert (e.binarized is None) == bool(e.not_binarizable)
        if e.binarized is not None:
            assert callable(e.load(e.binarized))


def test_every_model_source_has_a_loader_and_a_spelling() -> None:
    assert set(SOURCES) == set(ModelSource)
    assert all(entry.spelling for entry in SOURCES.values())


def test_every_executor_is_offered_and_has_a_runner() -> None:
    assert EXECUTORS == tuple(e.value for e in Executor)
    assert set(GRID_RUNNERS) == set(Executor)


def test_every_dataset_has_a_loader_and_standard_eps() -> None:
    assert set(DATASETS) == set(DatasetName)
    for name, dataset in DATASETS.items():
        assert dataset.name is name
        for threat in (ThreatModel.LINF, ThreatModel.L2):
            assert (name, threat) in DEFAULT_EPS, f"{name} has no standard eps under {threat}"
    assert set(ALIASES).isdisjoint(set(DatasetName))
    assert all(parse_dataset(d.value.upper()) is d for d in DatasetName)


def test_autoattack_cost_follows_the_norms_own_settings() -> None:
    """L1's standard AutoAttack runs APGD-CE with 5 restarts and APGD-T with 5 targets (Croce and Hein)."""
    linf = autoattack_attack_work("apgd-ce", 100, threat=ThreatModel.LINF)
    assert autoattack_attack_work("apgd-ce", 100, threat=ThreatModel.L1) == 5 * linf
    assert autoattack_attack_work("apgd-t", 100, threat=ThreatModel.L1) == pytest.approx(
        5 / 9 * autoattack_attack_work("apgd-t", 100, threat=ThreatModel.LINF))


def _eval_actions() -> list[argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices["eval"]._actions)


def _choices(command: str, option: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if option in a.option_strings)
    return list(action.choices or [])


def test_cli_choices_come_from_the_enums() -> None:
    assert _choices("eval", "--device") == [d.value for d in Device]
    assert _choices("eval", "--ctu") == [c.value for c in CtuImpl]
    assert _choices("eval", "--executor") == [e.value for e in Executor]
    assert _choices("eval", "--aa-version") == list(AA_VERSIONS)
    assert _choices("reproduce", "--protocol") == [p.value for p in Protocol]
    threat_help = next(a.help for a in _eval_actions() if "--threat" in a.option_strings)
    assert all(name in (threat_help or "") for name in THREAT_CHOICES)
    dataset_help = next(a.help for a in _eval_actions() if "--dataset" in a.option_strings)
    assert all(d.value in (dataset_help or "") for d in DatasetName)


def test_the_schema_enums_are_the_enums() -> None:
    schema = json.loads((REPO / "docs" / "result.schema.json").read_text())
    assert schema["properties"]["threat"]["enum"] == [t.value for t in ThreatModel]
    assert schema["properties"]["protocol"]["enum"] == [p.value for p in Protocol]
    assert schema["properties"]["dataset"]["enum"] == [d.value for d in DatasetName]


def test_the_layers_contract_places_every_module_and_the_top_level_stays_small() -> None:
    """One layers contract orders the whole package: a new top-level module or package must take a place in
    it (else import-linter would not check it), and the top level holds at most 8 modules beside the stage
    packages (the shared vocabulary and the API)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c.get("type") == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    package = REPO / "ctrobust"
    modules = {f"ctrobust.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    packages = {f"ctrobust.{p.name}" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert modules | packages <= placed, f"give these a layer in pyproject.toml: {sorted(modules | packages - placed)}"
    assert len(modules) <= 8, f"the top level holds {len(modules)} modules: {sorted(modules)}"


def test_no_public_name_is_shadowed_by_a_subpackage() -> None:
    """``ctrobust.run`` is a function: a subpackage of the same name would replace it once imported."""
    import ctrobust

    package = REPO / "ctrobust"
    children = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if p.is_dir()}
    assert not set(ctrobust.__all__) & children, sorted(set(ctrobust.__all__) & children)


def test_no_function_of_the_stages_is_longer_than_60_lines() -> None:
    """The protocol's stages stay readable: each function of ``ctrobust/stages/`` fits on a screen."""
    import ast

    long = []
    for path in sorted((REPO / "ctrobust" / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
