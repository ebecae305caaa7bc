"""ctrobust: robustness evaluation of Curvature Tuning (CT).

Data flow: models and data in (``ctrobust.models``, ``ctrobust.data``), CT applied
(``ctrobust.ct``), attacks run (``ctrobust.attacks``), beta chosen (``ctrobust.plan.selection``),
results stored (``ctrobust.results.store``) and reported (``ctrobust.report``), driven by ``ctrobust.stages.pipeline``
(docs/architecture.md); from Python,
``ctrobust.run`` (the whole protocol on any nn.Module; the result prints and displays itself, and
``result.plot()`` draws accuracy against beta), ``ctrobust.load_results`` (DataFrames) and
``ctrobust.forest_plot`` (the gains of several runs).

Public names are loaded on first use, so ``import ctrobust`` (and ``ctrobust --help``) does not
import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctrobust.api import evaluate, load_results, reproduce, run
    from ctrobust.attacks.spec import AttackName
    from ctrobust.ct import CTCoverage, CurvatureTuned, ct_coverage, ctu, curvature_tuned
    from ctrobust.datasets import DatasetName
    from ctrobust.errors import CtrobustError
    from ctrobust.plan.options import OptionTypeError
    from ctrobust.plan.run_plan import Protocol
    from ctrobust.report.figures import forest_plot
    from ctrobust.report.tables import paper_table
    from ctrobust.threats import ThreatModel

__version__ = "0.1.0"

_EXPORTS = {
    "CTCoverage": "ctrobust.ct", "CurvatureTuned": "ctrobust.ct", "ct_coverage": "ctrobust.ct",
    "ctu": "ctrobust.ct", "curvature_tuned": "ctrobust.ct", "evaluate": "ctrobust.api",
    "run": "ctrobust.api", "load_results": "ctrobust.api", "reproduce": "ctrobust.api",
    "forest_plot": "ctrobust.report.figures", "paper_table": "ctrobust.report.tables",
    # the choices as enums, for Python values (ctrobust.run(..., threat=ThreatModel.L2)), and the errors
    "ThreatModel": "ctrobust.threats", "AttackName": "ctrobust.attacks.spec", "DatasetName": "ctrobust.datasets",
    "Protocol": "ctrobust.plan.run_plan", "CtrobustError": "ctrobust.errors", "OptionTypeError": "ctrobust.plan.options",
}
__all__ = ["__version__", "AttackName", "CTCoverage", "CtrobustError", "CurvatureTuned", "DatasetName",
           "OptionTypeError", "Protocol", "ThreatModel", "ct_coverage", "ctu", "curvature_tuned", "evaluate",
           "forest_plot", "load_results", "paper_table", "reproduce", "run"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ctrobust' has no attribute {name!r}")
