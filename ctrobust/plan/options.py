"""The options of a run as Python values (from ``ctrobust.run`` or a TOML config): what each ``EvalConfig``
option accepts, converted once into the typed values ``EvalConfig`` holds (a tuple of floats for the betas, an
int for a count, an enum member as it is), never into command-line text.

``ctrobust.run(model, betas=[0.8, 0.9], eps=Fraction(8, 255), threat=ThreatModel.L2, device=torch.device("cpu"))``
gives the plan ``ctrobust eval --betas 0.8,0.9 --eps 0.0313... --threat l2 --device cpu`` gives; a value of the
wrong type is one ``OptionTypeError`` that names the option, the value and what it expects. The command line's
own strings are accepted too (``EvalConfig.resolve`` parses a string where it finds one). Torch and numpy are not
imported: arrays and tensors are recognised by their ``tolist``.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Callable
from enum import Enum
from fractions import Fraction
from typing import Any

from ctrobust.errors import CtrobustError


class OptionTypeError(CtrobustError, TypeError):
    """An option given from Python with a value of the wrong type."""


def _fail(name: str, value: Any, expected: str) -> OptionTypeError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return OptionTypeError(f"Expected {name} to be {expected}, but got {shown} ({type(value).__name__}).")


def _plain(value: Any) -> Any:
    """A numpy scalar or a one-element tensor as the Python number it holds; anything else unchanged."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        shape = getattr(value, "shape", None)
        if shape is not None and len(tuple(shape)) == 0:
            return _short_floats(value, [value.tolist()])[0]
    return value


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _short_floats(value: Any, items: list[Any]) -> list[Any]:
    """Floats of a float32/float16 array or tensor as the decimals they print as (torch.tensor([0.8]) is the
    beta 0.8, not 0.800000011920929); other items unchanged."""
    dtype = str(getattr(value, "dtype", ""))
    width = "float16" if "float16" in dtype else "float32" if "float32" in dtype else None
    if width is None:
        return items
    import numpy as np

    kind = np.float16 if width == "float16" else np.float32
    return [float(str(kind(v))) if isinstance(v, float) else v for v in items]


def _sequence(value: Any) -> list[Any] | None:
    """A list, tuple, range, numpy array or tensor (one-dimensional) as a list; None for anything else."""
    if isinstance(value, str | bytes | dict):
        return None
    if hasattr(value, "tolist"):
        items = value.tolist()
        if not isinstance(items, list) or any(isinstance(v, list) for v in items):
            return None
        return _short_floats(value, items)
    if isinstance(value, list | tuple | range):
        return [_plain(v) for v in value]
    return None


def text(expected: str = "a string") -> Callable[[str, Any], Any]:
    def convert(name: str, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        raise _fail(name, value, expected)
    return convert


def choice(expected: str) -> Callable[[str, Any], Any]:
    """A name (str) or its enum member (any Enum whose value is the name)."""
    def convert(name: str, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, Enum) and isinstance(value.value, str):
            return value.value
        raise _fail(name, value, expected)
    return convert


def path(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise _fail(name, value, "a path (str or os.PathLike)")


def device(name: str, value: Any) -> Any:
    """'auto', 'cpu', 'cuda' or a torch.device (its type: cuda:0 is cuda)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Enum):
        return value.value
    if type(value).__name__ == "device" and hasattr(value, "type"):
        return str(value.type)
    raise _fail(name, value, "'auto', 'cpu', 'cuda' or a torch.device")


def real(positive: bool = False) -> Callable[[str, Any], Any]:
    """A float, int, Fraction, numpy scalar or one-element tensor; a string like '8/255' too."""
    def convert(name: str, value: Any) -> Any:
        value = _plain(value)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = Fraction(value.strip())
            except (ValueError, ZeroDivisionError):
                raise _fail(name, value, "a number (0.05, 8/255 or Fraction(8, 255))") from None
        if not _is_real(value):
            raise _fail(name, value, "a number (0.05, 8/255 or Fraction(8, 255))")
        return float(value)
    return convert


def integer(name: str, value: Any) -> Any:
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _fail(name, value, "an integer")


def flag(name: str, value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, bool):
        return value
    raise _fail(name, value, "True or False")


def floats(expected: str) -> Callable[[str, Any], Any]:
    """A sequence of numbers (list, tuple, numpy array, tensor), one number, or the CLI's 'a,b,c' text."""
    def convert(name: str, value: Any) -> Any:
        value = _plain(value)
        if value is None or isinstance(value, str):
            return value
        items = [value] if _is_real(value) else _sequence(value)
        if items is None or not items or not all(_is_real(v) for v in items):
            raise _fail(name, value, expected)
        return tuple(float(v) for v in items)
    return convert


def names(expected: str) -> Callable[[str, Any], Any]:
    """A sequence of names (or enum members), or the CLI's 'a,b' text."""
    def convert(name: str, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        items = _sequence(value)
        if not items or not all(isinstance(v, str | Enum) for v in items):
            raise _fail(name, value, expected)
        return tuple(str(v.value if isinstance(v, Enum) else v) for v in items)
    return convert


def integers(expected: str) -> Callable[[str, Any], Any]:
    def convert(name: str, value: Any) -> Any:
        value = _plain(value)
        if value is None or isinstance(value, str):
            return value
        items = [value] if isinstance(value, numbers.Integral) and not isinstance(value, bool) else _sequence(value)
        if not items or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise _fail(name, value, expected)
        return tuple(int(v) for v in items)
    return convert


def count_or_auto(name: str, value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise _fail(name, value, "'auto' or a positive integer")


# What each option accepts from Python, and its Python type as the docs show it.
CONVERTERS: dict[str, tuple[Callable[[str, Any], Any], str]] = {
    "model": (text("a model name (str) or an nn.Module"), "str | nn.Module"),
    "dataset": (choice("a dataset name (str) or a DatasetName"), "str | DatasetName | None"),
    "checkpoint": (path, "str | PathLike | None"),
    "model_dir": (path, "str | PathLike | None"),
    "zoo_threat": (choice("a threat name (str) or a ThreatModel"), "str | ThreatModel | None"),
    "trust_checkpoint": (flag, "bool"),
    "mean": (floats("a sequence of numbers (one per channel) or 'a,b,c'"), "Sequence[float] | str | None"),
    "std": (floats("a sequence of numbers (one per channel) or 'a,b,c'"), "Sequence[float] | str | None"),
    "data_dir": (path, "str | PathLike | None"),
    "threat": (choice("a threat name (str) or a ThreatModel"), "str | ThreatModel"),
    "eps": (real(), "float | Fraction | None"),
    "attack": (choice("an attack name (str) or an AttackName"), "str | AttackName"),
    "aa_version": (choice("an AutoAttack version (str) or an AutoAttackVersion"), "str | AutoAttackVersion"),
    "steps": (integer, "int | None"),
    "restarts": (integer, "int"),
    "step_size": (real(), "float | None"),
    "corruptions": (names("a sequence of corruption names or 'a,b'"), "Sequence[str] | str | None"),
    "severities": (integers("a sequence of integers in 1-5, '1,3,5' or '2-4'"), "Sequence[int] | str | None"),
    "select_attack": (choice("an attack name (str) or an AttackName"), "str | AttackName | None"),
    "select_steps": (integer, "int"),
    "betas": (floats("a sequence of numbers in [0, 1], 'b1,b2' or 'start:stop:step'"),
              "Sequence[float] | ndarray | Tensor | str"),
    "no_base_candidate": (flag, "bool"),
    "beta_batch": (count_or_auto, "int | 'auto'"),
    "sweep": (choice("'grid', 'halving' or a SweepMode"), "str | SweepMode"),
    "protocol": (choice("'heldout', 'paper' or a Protocol"), "str | Protocol"),
    "n_examples": (integer, "int"),
    "n_select": (integer, "int"),
    "seed": (integer, "int"),
    "device": (device, "str | torch.device"),
    "batch_size": (integer, "int"),
    "check_budget": (real(), "float"),
    "executor": (choice("'local', 'ray' or an Executor"), "str | Executor"),
    "ray_address": (text(), "str | None"),
    "ctu": (choice("'auto', 'fused', 'eager' or a CtuImpl"), "str | CtuImpl"),
    "out": (path, "str | PathLike | None"),
    "store": (path, "str | PathLike | None"),
    "json": (flag, "bool"),
    "no_progress": (flag, "bool"),
    "strict_checks": (flag, "bool"),
}


def from_python(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (EvalConfig field names) converted into the typed values EvalConfig holds; a wrong type
    raises ``OptionTypeError`` naming the option."""
    out = {}
    for name, value in options.items():
        convert = CONVERTERS[name][0]
        out[name] = convert(name, value)
    return out


def spoken_to_python(exc: CtrobustError) -> CtrobustError:
    """The same error with every option named as a Python caller names it: ``--n-examples`` becomes
    ``n_examples`` (one message source, two spellings: the command line keeps its flags)."""
    def keyword(match: re.Match[str]) -> str:
        name = match.group(1).replace("-", "_")
        return name if name in CONVERTERS else match.group(0)

    exc.args = (re.sub(r"--([a-z][a-z0-9-]*)", keyword, str(exc)), *exc.args[1:])
    return exc

