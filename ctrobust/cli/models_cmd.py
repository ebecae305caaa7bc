"""``ctrobust models``: what can be loaded, its architecture, and whether CT applies to it."""

from __future__ import annotations

import argparse

from ctrobust.datasets import DATASET_CHOICES
from ctrobust.threats import ZOO_THREATS

EPILOG = """examples:
  ctrobust models
  ctrobust models --dataset cifar10 --threat linf

"CT applies" for zoo models comes from the committed audit (ctrobust audit-ct).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list loadable models and whether CT applies", description=__doc__,
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help=f"only this dataset ({', '.join(DATASET_CHOICES)})")
    parser.add_argument("--threat", default=None, help=f"only this RobustBench zoo threat ({', '.join(ZOO_THREATS)})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctrobust.datasets import parse_dataset
    from ctrobust.models.registry import SOURCES
    from ctrobust.threats import parse_threat

    dataset = parse_dataset(args.dataset) if args.dataset else None
    threat = parse_threat(args.threat) if args.threat else None
    rows = [row for entry in SOURCES.values() for row in entry.rows(dataset, threat)]
    import pandas as pd

    table = pd.DataFrame(rows, columns=["model", "dataset", "threat", "architecture", "CT applies"])
    print(table.to_markdown(index=False, tablefmt="simple"))
    return 0
