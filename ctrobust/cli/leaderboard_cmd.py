"""``ctrobust leaderboard``: per-model JSON entries from the store, and a ranked page (HTML and Markdown)."""

from __future__ import annotations

import argparse

from ctrobust.cli.store_args import add_run_filters, add_store_option

EPILOG = """examples:
  ctrobust leaderboard                               # reports/ctrobust.sqlite -> leaderboards/
  ctrobust leaderboard --store runs.sqlite --out leaderboards

Writes <out>/<dataset>/<threat>/<model>.json per model (held-out runs preferred, then AutoAttack, then the
largest n; mean over the seeds of one setting), then <out>/README.md and <out>/index.html ranking them.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("leaderboard", help="write leaderboard entries and pages from the results store",
                            description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_option(parser)
    parser.add_argument("--out", default="leaderboards", metavar="DIR", help="leaderboard folder (default: leaderboards)")
    add_run_filters(parser, "entries")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctrobust.outputs import check_output_dir
    from ctrobust.report.leaderboard import entries_from_runs, write_entries, write_leaderboard_pages
    from ctrobust.results.store import existing_store, select_runs

    out = check_output_dir(args.out)
    with existing_store(args.store) as store:
        runs = select_runs(store, model=args.model, dataset=args.dataset, threat=args.threat)
    entries = entries_from_runs(runs)
    paths = write_entries(entries, out)
    md, html = write_leaderboard_pages(entries, out)
    for path in paths:
        print(f"wrote {path}")
    print(f"wrote {md} and {html}")
    return 0
