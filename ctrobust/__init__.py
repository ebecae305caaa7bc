"""ctrobust: robustness evaluation of Curvature Tuning (CT).

Data flow: models and data in (``ctrobust.models``, ``ctrobust.data``), CT applied
(``ctrobust.ct``), attacks run (``ctrobust.attacks``), beta chosen (``ctrobust.selection``),
results stored and reported (``ctrobust.results``), driven by ``ctrobust.pipeline`` and the CLI.
"""

from ctrobust.ct import CTCoverage, CurvatureTuned, ct_coverage, ctu, curvature_tuned

__version__ = "0.1.0"

__all__ = ["CTCoverage", "CurvatureTuned", "__version__", "ct_coverage", "ctu", "curvature_tuned", "evaluate"]


def __getattr__(name: str):  # lazy: keep `import ctrobust` light
    if name == "evaluate":
        from ctrobust.attacks.evaluation import evaluate

        return evaluate
    raise AttributeError(name)
