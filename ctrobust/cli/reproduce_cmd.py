"""``ctrobust reproduce``: run a grid of evaluations from a config through the store, write the paper's table.

Every finished cell goes to the store at once, so a run that is stopped (Ctrl-C, kill -9, a lost
machine) continues where it stopped when started again with the same config and store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctrobust.cli.store_args import add_store_option
from ctrobust.plan.run_plan import Device, Executor, Protocol

EPILOG = """examples:
  ctrobust reproduce --config small                   # offline, Fashion-MNIST, minutes on a CPU
  ctrobust reproduce --config paper --device cuda     # the paper's grid (needs checkpoints, data, GPU-days)
  ctrobust reproduce --config my_grid.toml --protocol heldout --dry-run

Shipped configs: small, paper (see ctrobust/configs/). Output: <out>/table.md, table.csv (the paper's
layout, mean +- std over seeds) and runs.csv (one row per run, with 95% intervals and McNemar p).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("reproduce", help="run a grid of evaluations and write the paper's robustness table",
                            description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="grid config (TOML), or a shipped one: small, paper")
    add_store_option(parser)
    parser.add_argument("--out", default=None, metavar="DIR", help="where the tables go (default: reports/reproduce-<name>)")
    parser.add_argument("--protocol", choices=[p.value for p in Protocol], action="append", default=None,
                        help="only these protocols of the config (repeatable; default: all it lists)")
    parser.add_argument("--device", default=None, choices=[d.value for d in Device], help="override the config's device")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="override the config's data dir")
    parser.add_argument("--model-dir", default=None, metavar="DIR", help="override the config's model dir")
    parser.add_argument("--executor", choices=[e.value for e in Executor], default="local",
                        help="local: units one after another here; ray: one Ray task per unit "
                             "(from a checkout: pip install -e '.[ray]')")
    parser.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                        help="with --executor ray: the cluster to join (default: start a local one)")
    parser.add_argument("--dry-run", action="store_true", help="list the units and whether each is stored, run nothing")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ctrobust.errors import CtrobustError
    from ctrobust.executors import Progress, run_grid
    from ctrobust.outputs import check_output_dir, plural, safe_name
    from ctrobust.plan.reproduce import load_config
    from ctrobust.report.tables import paper_table, paper_table_latex, paper_table_markdown, runs_frame, write_csv
    from ctrobust.results.store import open_store
    from ctrobust.stages.subject import stored_run

    if args.ray_address and args.executor != "ray":
        raise CtrobustError("--ray-address goes with --executor ray.")
    overrides = {k: v for k, v in (("device", args.device), ("data_dir", args.data_dir),
                                   ("model_dir", args.model_dir)) if v is not None}
    config = load_config(args.config, overrides)
    if args.protocol:
        present = sorted({str(u.plan.protocol.value) for u in config.units})
        config.units = [u for u in config.units if u.plan.protocol in args.protocol]
        if not config.units:
            raise CtrobustError(f"--protocol {' '.join(args.protocol)} leaves none of the units of {config.path}: "
                                f"its units' protocols are {', '.join(present)}.")
    # The default folder comes from the config's name, which an untrusted file sets: keep it in reports/.
    out = check_output_dir(args.out) if args.out else check_output_dir(
        Path("reports") / f"reproduce-{safe_name(config.name)}", inside="reports", what="the output folder")
    with open_store(args.store) as store:
        if args.dry_run:
            for unit in config.units:
                try:  # what is stored is found by the model's behaviour and the data: both are loaded
                    state = "stored" if stored_run(unit.plan, store)[0] is not None else "to run"
                except CtrobustError as exc:
                    state = f"fails ({exc})"
                print(f"{state:>7}  {unit.label}")
            print(f"{len(config.units)} units in {config.path}; store {store.path}")
            return 0
        with tqdm(total=len(config.units), desc=f"reproduce {config.name}", unit="run", disable=args.no_progress,
                  dynamic_ncols=True) as bar:

            def on_progress(p: Progress) -> None:
                bar.n = p.done + p.failed
                bar.set_postfix_str(p.postfix(), refresh=False)
                bar.refresh()

            outcome = run_grid(config, store, args.executor, command=args.command_line, on_progress=on_progress,
                               ray_address=args.ray_address)
        if not outcome.results:  # every unit failed: their errors below, no table
            for label, error in outcome.failures:
                print(f"ctrobust: error: unit {label} failed: {error}", file=sys.stderr)
            raise CtrobustError(f"none of the {len(config.units)} units succeeded (errors above): no table written.")
        rows = paper_table(outcome.results)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(paper_table_markdown(rows))
        (out / "table.tex").write_text(paper_table_latex(rows))
        write_csv(rows, out / "table.csv")
        write_csv(runs_frame(outcome.results), out / "runs.csv")
        print(paper_table_markdown(rows))
        print(f"{plural(outcome.ran, 'run')} made, {outcome.already_stored} already stored; cells: {outcome.cells_computed} "
              f"computed, {outcome.cells_reused} reused from {store.path}")
        print(f"wrote {out / 'table.md'}, {out / 'table.tex'}, {out / 'table.csv'}, {out / 'runs.csv'}")
    for label, error in outcome.failures:
        print(f"ctrobust: error: unit {label} failed: {error}", file=sys.stderr)
    return 2 if outcome.failures else 0
