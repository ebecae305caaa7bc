"""Curvature Tuning: the CT unit and the model transform that applies it."""

from ctrobust.ct.apply import CurvatureTuned, curvature_tuned
from ctrobust.ct.coverage import CTCoverage, ct_coverage
from ctrobust.ct.unit import check_beta, ctu

__all__ = ["CTCoverage", "CurvatureTuned", "check_beta", "ct_coverage", "ctu", "curvature_tuned"]
