"""A grid of evaluation runs (models x datasets x threats x seeds x protocols) from a TOML file.

Each unit of the grid is one ``eval`` run through the results store: a unit already finished in
the store is not run again, and an interrupted unit resumes from its stored cells.

Config layout::

    name = "small"
    [defaults]            # any `ctrobust eval` option, by its field name (n_examples, betas, attack, ...)
    n_examples = 200
    [threats.corruptions] # options for one threat only
    corruptions = "fog,snow"
    [[grid]]              # one or more blocks; each is the product of its lists
    models = ["smallcnn"]
    datasets = ["fashion-mnist"]
    threats = ["linf", "l2"]
    seeds = [42, 43]
    protocols = ["heldout", "paper"]
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ctrobust.errors import CtrobustError, unknown_name_error
from ctrobust.plan.config import EvalConfig, config_file_fields
from ctrobust.plan.options import OptionTypeError, from_python
from ctrobust.plan.run_plan import RunPlan
from ctrobust.threats import ThreatModel, parse_threat

SECTIONS = ("name", "description", "defaults", "threats", "grid")
GRID_KEYS = {"models": "model", "datasets": "dataset", "threats": "threat", "seeds": "seed", "protocols": "protocol"}
SHIPPED = ("paper", "small")


@dataclass(frozen=True)
class Unit:
    """One run of the grid, resolved."""

    plan: RunPlan

    @property
    def label(self) -> str:
        return self.plan.label


@dataclass
class ReproduceConfig:
    name: str
    description: str
    path: str
    units: list[Unit]


def config_path(name_or_path: str) -> Path:
    """A file path, or the name of a shipped config (paper, small)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if name_or_path in SHIPPED:
        return Path(str(resources.files("ctrobust") / "configs" / f"{name_or_path}.toml"))
    raise CtrobustError(
        f"Config {name_or_path!r} not found: pass a TOML file or one of the shipped configs ({', '.join(SHIPPED)})."
    )


def load_config(name_or_path: str, overrides: dict[str, Any] | None = None) -> ReproduceConfig:
    path = config_path(name_or_path)
    if not path.is_file():
        raise CtrobustError(f"--config {path} is not a file: pass a TOML file or a shipped config ({', '.join(SHIPPED)}).")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CtrobustError(f"{path} is not valid TOML: {exc}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise CtrobustError(f"{path} cannot be read as a TOML file: {exc}") from None
    allowed = config_file_fields()
    for section in raw:
        if section not in SECTIONS:
            raise unknown_name_error(f"section in {path}:", section, SECTIONS)
    _expect_table(raw.get("defaults", {}), f"{path} [defaults]")
    _expect_table(raw.get("threats", {}), f"{path} [threats]")
    for threat, opts in dict(raw.get("threats", {})).items():
        _expect_table(opts, f"{path} [threats.{threat}]")
    if not isinstance(raw.get("grid", []), list) or not all(isinstance(b, dict) for b in raw.get("grid", [])):
        raise CtrobustError(f"{path}: [[grid]] must be blocks of options (an array of tables).")
    defaults = dict(raw.get("defaults", {}))
    _check_keys(defaults, allowed, f"{path} [defaults]")
    per_threat: dict[ThreatModel, dict[str, Any]] = {}
    for name, opts in raw.get("threats", {}).items():  # spelt as --threat takes it: [threats.Linf], [threats.l2]
        try:
            threat = parse_threat(name)
        except CtrobustError as exc:
            raise CtrobustError(f"{path} [threats.{name}]: {exc}") from None
        if threat in per_threat:
            raise CtrobustError(f"{path} has two sections for the threat {threat.value}: merge them into one.")
        _check_keys(opts, allowed, f"{path} [threats.{name}]")
        per_threat[threat] = dict(opts)
    blocks = raw.get("grid", [])
    if not blocks:
        raise CtrobustError(f"{path} has no [[grid]] block: add one with models, datasets, threats and seeds.")
    units: list[Unit] = []
    for number, block in enumerate(blocks, 1):
        block = dict(block)
        lists = {key: _as_list(block.pop(key, None), key) for key in GRID_KEYS}
        _check_keys(block, allowed, f"{path} [[grid]] block {number}")
        if not lists["models"]:
            raise CtrobustError(f"{path} [[grid]] block {number} names no models.")
        lists["datasets"] = lists["datasets"] or [None]
        lists["threats"] = lists["threats"] or ["linf"]
        lists["seeds"] = lists["seeds"] or [0]
        lists["protocols"] = lists["protocols"] or ["heldout"]
        for combo in itertools.product(*(lists[key] for key in GRID_KEYS)):
            chosen = dict(zip(GRID_KEYS.values(), combo))
            settings = {**defaults, **per_threat.get(parse_threat(str(chosen["threat"])), {}), **block, **chosen,
                        **(overrides or {})}
            units.append(Unit(EvalConfig(**_typed(settings, path)).resolve()))
    return ReproduceConfig(str(raw.get("name", path.stem)), str(raw.get("description", "")), str(path), units)


def _typed(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    """Each value converted as ``ctrobust.run`` converts a Python value (``plan/options.py``), with the file named
    in the error: a seed of 1.5 or a count given as text is an error, not 1 or 10."""
    try:
        return from_python(settings)
    except OptionTypeError as exc:
        text = str(exc)
        raise CtrobustError(f"{path}: {text[:1].lower()}{text[1:]}") from None


def _expect_table(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise CtrobustError(f"{where} must be a table of options, but got {value!r}.")


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    values = list(value) if isinstance(value, list) else [value]
    field_kind = {"seeds": int}.get(key, str)
    for item in values:
        if not isinstance(item, field_kind) or isinstance(item, bool):
            kind = "integers" if field_kind is int else "strings"
            raise CtrobustError(f"expected {key} in a [[grid]] block to be {kind}, but got {item!r}.")
    return values


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise unknown_name_error(f"option in {where}", key, sorted(allowed))

