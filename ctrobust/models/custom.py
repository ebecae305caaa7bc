"""A user's own model: ``path/to/file.py:factory`` or ``package.module:factory``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch.nn as nn

from ctrobust.errors import CtrobustError


def is_custom_spec(name: str) -> bool:
    target, sep, attr = name.rpartition(":")
    return bool(sep and attr and (target.endswith(".py") or "." in target or "/" in target))


def load_factory_model(spec: str) -> nn.Module:
    """Import the module (from a file or by name) and call ``factory()``; it must return an nn.Module."""
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise CtrobustError(f"Model file not found: {path}")
        mod_name = f"ctrobust_user_model_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise CtrobustError(f"Cannot import {path} as a Python module.")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code may raise anything
            raise CtrobustError(f"Importing {path} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CtrobustError(f"Cannot import module {target!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise CtrobustError(f"{target} has no callable {attr!r}; {_callables(module)}.")
    try:
        model = factory()
    except Exception as exc:  # the user's code may raise anything
        raise CtrobustError(f"{spec}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise CtrobustError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module.")
    return model


def _callables(module: object) -> str:
    """What a ``file.py:factory`` could name instead: the module's own public functions and classes."""
    name = getattr(module, "__name__", "")
    found = sorted(n for n, v in vars(module).items()
                   if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == name)
    return f"it defines {', '.join(found)}" if found else "it defines no function or class"
