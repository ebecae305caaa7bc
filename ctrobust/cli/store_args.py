"""Options shared by the commands that read or write the results store."""

from __future__ import annotations

import argparse

from ctrobust.threats import THREAT_CHOICES

STORE_HELP = "results store (SQLite; env CTROBUST_STORE; default: reports/ctrobust.sqlite)"


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, metavar="PATH", help=STORE_HELP)


def add_run_filters(parser: argparse.ArgumentParser, what: str) -> None:
    """--model / --dataset / --threat: only the runs that match."""
    parser.add_argument("--model", default=None, help=f"only {what} of this model")
    parser.add_argument("--dataset", default=None, help=f"only {what} on this dataset")
    parser.add_argument("--threat", default=None, help=f"only {what} under this threat ({', '.join(THREAT_CHOICES)})")
