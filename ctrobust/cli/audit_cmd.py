"""``ctrobust audit-ct``: build every RobustBench zoo architecture (random weights), apply CT, report."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  ctrobust audit-ct --out ctrobust/models/zoo_ct_audit.csv
  ctrobust audit-ct --dataset cifar10 --max-params 100

The audit resumes: rows already in --out are kept. Per model it reports ReLU sites reached by kind,
other activations, max |output(beta=1) - original| and whether beta = 0.9 changes the output.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit-ct", help="check that CT reaches every ReLU of every zoo architecture",
                            description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, metavar="CSV", help="CSV to write (default: the packaged audit file)")
    parser.add_argument("--dataset", action="append", default=None, help="only this dataset (repeatable)")
    parser.add_argument("--max-params", type=float, default=150.0, metavar="M",
                        help="skip architectures over M million parameters (listed as skipped; default 150)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown summary of --out and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ctrobust.datasets import parse_dataset
    from ctrobust.errors import CtrobustError
    from ctrobust.models.ct_audit import AUDIT_CSV, read_audit, run_audit, summarize, zoo_entries
    from ctrobust.plan.run_plan import resolve_ctu

    datasets = [parse_dataset(d) for d in args.dataset] if args.dataset else None
    out = Path(args.out) if args.out else AUDIT_CSV
    if args.markdown:
        rows = read_audit(out)
        if not rows:
            raise CtrobustError(f"No audit at {out}; run `ctrobust audit-ct --out {out}` first.")
        print(summarize(rows))
        return 0
    total = sum(1 for _ in zoo_entries(datasets))
    with tqdm(total=total, desc="audit-ct", disable=args.no_progress, unit="model") as bar:
        rows = run_audit(out, args.max_params, datasets, on_row=lambda r: bar.set_postfix_str(r.model) or bar.update(1),
                         impl=resolve_ctu().value)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f"  ->  {out}")
    return 0
