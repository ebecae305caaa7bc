"""Import robustbench 1.1.1 as released on PyPI.

It does ``from autoattack import AutoAttack``, but its dependency ``pyautoattack`` installs the
module ``pyautoattack``. Aliasing ``autoattack`` and its submodules to ``pyautoattack`` in
``sys.modules`` before the first robustbench import makes it import.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from types import ModuleType


def _alias_autoattack() -> None:
    if "autoattack" in sys.modules:
        return
    import pyautoattack

    sys.modules["autoattack"] = pyautoattack
    for info in pkgutil.iter_modules(pyautoattack.__path__):
        try:
            sys.modules[f"autoattack.{info.name}"] = importlib.import_module(f"pyautoattack.{info.name}")
        except ImportError:  # the TensorFlow adapters need TensorFlow; robustbench does not use them
            continue


def import_robustbench() -> ModuleType:
    """Return the ``robustbench`` package, importable with no step by the user."""
    _alias_autoattack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # pkg_resources deprecation notice
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)  # timm's moved-module notices
        import robustbench
        import robustbench.data  # noqa: F401
        import robustbench.zenodo_download  # noqa: F401
    return robustbench
