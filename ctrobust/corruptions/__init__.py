"""The common-corruptions threat: 15 corruptions x 5 severities, official files or generated."""

from ctrobust.corruptions.names import CORRUPTIONS, SEVERITIES, parse_corruptions, parse_severities

__all__ = ["CORRUPTIONS", "SEVERITIES", "parse_corruptions", "parse_severities"]
