"""``ctrobust audit-attack``: the attack's evidence for one stored run at full size (opt-in; meant for a GPU).

The binarization test with hundreds of samples and up to 999 inner points under several attacks
(APGD with cross-entropy and margin losses, FAB, Square, the run's reported and selection attacks),
its unbounded-eps variant, the binarized success rate along the whole beta grid, Pintor et al.'s
indicators of attack failure on ctrobust's PGD, and the selection attack's fidelity to AutoAttack
over the grid. The result goes into the store beside the run, and `ctrobust report` draws it.
"""

from __future__ import annotations

import argparse

from ctrobust.cli.store_args import add_run_filters, add_store_option
from ctrobust.plan.run_plan import Device

EPILOG = """examples:
  ctrobust audit-attack --run 1a2b3c4d5e6f --device cuda
  ctrobust audit-attack --model smallcnn --threat linf --samples 50 --inner 199 --no-grid --fidelity-points 0

On 2 CPU cores the default sizes take hours on the shipped model; a GPU takes minutes.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit-attack", help="test the attack of a stored run at full size (binarization, "
                            "several attacks, the beta grid, indicators of attack failure)",
                            description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_option(parser)
    parser.add_argument("--run", default=None, metavar="RUN_ID", help="the run (its id or a prefix of it); default: "
                        "the newest norm-bounded run matching --model/--dataset/--threat")
    add_run_filters(parser, "runs")
    parser.add_argument("--samples", type=int, default=200, help="binarization samples (default: 200)")
    parser.add_argument("--inner", type=int, default=999, help="random inner points per sample (default: 999)")
    parser.add_argument("--square-queries", type=int, default=5000, help="Square's queries (default: 5000)")
    parser.add_argument("--no-grid", action="store_true", help="skip the binarized success rate along the beta grid")
    parser.add_argument("--fidelity-points", type=int, default=None, metavar="N",
                        help="selection points for the fidelity curves (default: the run's whole selection split; "
                        "0 skips them: AutoAttack at every beta is the costliest part)")
    parser.add_argument("--trajectory-points", type=int, default=100, metavar="N",
                        help="evaluation points for the PGD indicators (default: 100)")
    parser.add_argument("--device", default="auto", choices=[d.value for d in Device], help="default: auto")
    parser.add_argument("--batch-size", type=int, default=500, help="batch size (default: 500)")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="dataset directory (env CTROBUST_DATA_DIR)")
    parser.add_argument("--model-dir", default=None, metavar="DIR", help="RobustBench checkpoints (as for eval)")
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from tqdm import tqdm

    from ctrobust.checks.audit import AuditProgress, AuditSettings, audit_run, plan_steps
    from ctrobust.errors import CtrobustError
    from ctrobust.plan.run_plan import Device
    from ctrobust.report.audit_text import summary_lines
    from ctrobust.results.store import existing_store, select_runs
    from ctrobust.stages.pipeline import resolve_device
    from ctrobust.stages.reload import reload_run

    for name in ("samples", "inner", "square_queries", "trajectory_points", "batch_size"):
        if getattr(args, name) <= 0:
            raise CtrobustError(f"Expected `--{name.replace('_', '-')}` to be a positive integer, but got "
                                f"{getattr(args, name)}.")
    if args.fidelity_points is not None and args.fidelity_points < 0:
        raise CtrobustError(f"Expected `--fidelity-points` to be 0 or more, but got {args.fidelity_points}.")
    settings = AuditSettings(samples=args.samples, inner=args.inner, square_queries=args.square_queries,
                             grid=not args.no_grid, fidelity_points=args.fidelity_points,
                             trajectory_points=args.trajectory_points)
    device = resolve_device(Device(args.device))
    with existing_store(args.store, read_only=False) as store:
        runs = [r for r in select_runs(store, model=args.model, dataset=args.dataset, threat=args.threat)
                if r.threat.is_norm_bounded and (args.run is None or r.run_id.startswith(args.run))]
        if not runs:
            raise CtrobustError(f"No norm-bounded run in {store.path} matches"
                                + (f" --run {args.run}" if args.run else " the filters") + ".")
        if args.run is not None and len({r.run_id for r in runs}) > 1:
            raise CtrobustError(f"--run {args.run} matches {len({r.run_id for r in runs})} runs; give more of the id.")
        target = runs[-1]
        ct, x_eval, y_eval, x_select, y_select = reload_run(target, args.data_dir, args.model_dir, device)
        with tqdm(total=plan_steps(target, settings), desc="ctrobust audit-attack", unit="step",
                  disable=args.no_progress or args.verbosity < 0) as bar:
            def step(label: str) -> None:
                bar.set_postfix_str(label, refresh=False)
                bar.update(1)

            audit = audit_run(target, ct, x_eval, y_eval, x_select, y_select, device, settings, args.batch_size,
                              AuditProgress(step))
        store.put_audit(target.run_id, settings.to_dict(), audit)
    if args.json:
        print(json.dumps(audit))
    else:
        print("\n".join(summary_lines(audit)))
        print(f"\nstored in {store.path} beside run {target.run_id}; `ctrobust report` draws it")
    return 0
