"""``ctrobust eval``: choose beta on held-out data, then attack base and CT on the evaluation split."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import TYPE_CHECKING

from ctrobust.plan.config import CLI_ONLY_METADATA, EvalConfig, config_fields
from ctrobust.plan.run_plan import Executor

if TYPE_CHECKING:
    from pathlib import Path

    from ctrobust.plan.run_plan import RunPlan
    from ctrobust.results.result import RunResult
    from ctrobust.results.store import Store

EPILOG = """examples:
  ctrobust eval --model smallcnn --threat linf
  ctrobust eval --model smallcnn --dataset fashion-mnist --threat l2 --eps 1.0 --attack pgd --steps 50
  ctrobust eval --model smallcnn --betas 0.8:0.95:0.05 --n-examples 200 --json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="measure robust accuracy of a model and of its CT version",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, default, meta in config_fields():
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        help_text = meta["help"]
        meta = {k: v for k, v in meta.items() if k not in CLI_ONLY_METADATA}
        if meta.get("action") != "store_true" and default is not None:
            help_text += f" (default: {default})"
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default, help=help_text, **meta)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ctrobust.api import run_plan
    from ctrobust.errors import CtrobustError
    from ctrobust.outputs import check_output_dir, plural
    from ctrobust.report.run_output import run_name, summary_table, write_result
    from ctrobust.results.store import open_store
    from ctrobust.stages.progress import RunProgress

    # Under --json stdout holds the result's JSON alone: what user code prints (a model file on import, its
    # factory, its forward) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if getattr(args, "json", False) else contextlib.nullcontext():
        cfg = EvalConfig(**{name: getattr(args, name) for name, _, _ in config_fields()})
        plan = cfg.resolve()
        # Outputs are checked before any work: a bad --out found after an hour's run loses the hour.
        out_root = check_output_dir(cfg.out) if cfg.out else check_output_dir("reports", what="the output folder")
        if cfg.out:
            refuse_other_runs_folder(out_root, plan)
        on_ray = Executor(cfg.executor) is Executor.RAY
        if cfg.ray_address and not on_ray:
            raise CtrobustError("--ray-address goes with --executor ray.")
        with open_store(cfg.store) as store:
            if on_ray:
                result = _run_on_ray(plan, cfg.ray_address, store, args.command_line)
            else:
                with RunProgress("ctrobust eval", disable=cfg.no_progress or args.verbosity < 0,
                                 full_text=args.verbosity > 0) as progress:
                    result = run_plan(plan, store=store, progress=progress, command=args.command_line)
        out_dir = out_root if cfg.out else out_root / run_name(result)
        json_path, csv_path = write_result(result, out_dir)
    if cfg.json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        print(summary_table(result))
        print(f"\nwrote {json_path} and {csv_path}; store {store.path}: "
              f"{plural(result.cells_computed, 'cell')} computed, {result.cells_reused} reused")
    if cfg.strict_checks and result.sanity is not None and result.sanity.binarization_failed:
        print("ctrobust: error: the binarization test FAILED (--strict-checks): the attack does not find adversarial "
              "examples that provably exist; see the warnings above", file=sys.stderr)
        return 3
    if cfg.strict_checks and result.sanity is not None and result.sanity.not_run:
        checks = "; ".join(f"{check}: {why}" for check, why in result.sanity.not_run.items())
        print(f"ctrobust: error: checks not run (--strict-checks): {checks}", file=sys.stderr)
        return 3
    return 0


def refuse_other_runs_folder(out: Path, plan: RunPlan) -> None:
    """--out holding another run's result.json is refused before work (the same plan may write over its own)."""
    from ctrobust.errors import CtrobustError

    existing = out / "result.json"
    if not existing.is_file():
        return
    try:
        identity = json.loads(existing.read_text()).get("identity") or {}
    except (OSError, ValueError, AttributeError):
        identity = None
    mine = plan.identity()
    if not isinstance(identity, dict) or any(identity.get(k) != v for k, v in mine.items()):
        raise CtrobustError(f"--out {out} holds the result.json of another run: choose another folder, or move "
                            "that one away.")


def _run_on_ray(plan: RunPlan, address: str | None, store: Store, command: str) -> RunResult:
    """The run as one unit on a Ray cluster; the store here receives its cells and result."""
    from ctrobust.errors import CtrobustError
    from ctrobust.executors import run_grid
    from ctrobust.plan.reproduce import ReproduceConfig, Unit

    grid = ReproduceConfig("eval", "", "(command line)", [Unit(plan)])
    outcome = run_grid(grid, store, Executor.RAY, command=command, ray_address=address)
    if outcome.failures:
        raise CtrobustError(outcome.failures[0][1])
    return outcome.results[0]
