"""``ctrobust report``: an HTML page with figures, and CSV files, from the runs in a results store."""

from __future__ import annotations

import argparse

from ctrobust.cli.store_args import add_run_filters, add_store_option

EPILOG = """examples:
  ctrobust report                                   # reports/ctrobust.sqlite -> reports/html/index.html
  ctrobust report --store runs.sqlite --out site/ --threat linf

The page works offline (figures are PNG files next to it, no scripts, no CDN). CSV files: summary.csv,
paper_table.csv, and per run csv/<run>-beta.csv, -autoattack.csv, -corruptions.csv.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="write an HTML report and CSV files from the results store",
                            description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_option(parser)
    parser.add_argument("--out", default="reports/html", metavar="DIR", help="output directory (default: reports/html)")
    add_run_filters(parser, "runs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctrobust.outputs import check_output_dir, plural
    from ctrobust.report.html import write_report
    from ctrobust.results.store import existing_store, select_runs

    out = check_output_dir(args.out)
    with existing_store(args.store) as store:
        runs = select_runs(store, model=args.model, dataset=args.dataset, threat=args.threat)
        page = write_report(runs, out, str(store.path), {r.run_id: store.audits(r.run_id) for r in runs})
    print(f"wrote {page} ({plural(len(runs), 'run')})")
    return 0
