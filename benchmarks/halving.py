"""Successive halving against the full grid: the same beta chosen, for how much less work?

For each model, runs the held-out protocol twice with a fresh store, `--sweep grid` and
`--sweep halving` (31 candidates: the paper's grid and beta = 1, on 500 selection points), and
prints the betas chosen, the sweep's attack seconds (the selection cells' own times) and their
ratio. The final attack is a cheap APGD-CE on 100 points: only the sweep is compared here.

    .venv/bin/python benchmarks/halving.py --models smallcnn,smallcnn@benchmarks/models/smallcnn_seed1.pt
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from common import machine
from ctrobust.plan.config import EvalConfig
from ctrobust.results.store import open_store
from ctrobust.stages.pipeline import resolve_device, run_eval


def sweep(model: str, checkpoint: str | None, mode: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """(chosen beta, its selection-split robust accuracy, seconds of the selection cells)."""
    cfg = EvalConfig(model=model, checkpoint=checkpoint, dataset="fashion-mnist", n_examples=100,
                     n_select=args.n_select, attack="apgd-ce", steps=10, sweep=mode, seed=args.seed,
                     device=args.device, no_progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite"
        with open_store(path) as store:
            result = run_eval(cfg.resolve(), store=store)
        with sqlite3.connect(path) as db:
            seconds = db.execute("SELECT SUM(seconds) FROM cells WHERE split = 'select'").fetchone()[0]
    return result.beta, result.select_curve[result.beta], float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smallcnn,smallcnn@benchmarks/models/smallcnn_seed1.pt",
                        help="comma list of NAME or NAME@CHECKPOINT")
    parser.add_argument("--n-select", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"successive halving vs grid, n_select={args.n_select}, seed {args.seed}; "
          f"machine: {machine(resolve_device(args.device))}", flush=True)
    for spec in args.models.split(","):
        model, _, checkpoint = spec.partition("@")
        grid_beta, grid_acc, grid_s = sweep(model, checkpoint or None, "grid", args)
        half_beta, half_acc, half_s = sweep(model, checkpoint or None, "halving", args)
        print(f"{spec}: grid beta {grid_beta:.2f} ({100 * grid_acc:.1f}% on the selection split, {grid_s:.1f} s); "
              f"halving beta {half_beta:.2f} ({100 * half_acc:.1f}%, {half_s:.1f} s); "
              f"{'same beta' if grid_beta == half_beta else 'DIFFERENT beta'}; sweep {grid_s / half_s:.2f}x cheaper",
              flush=True)


if __name__ == "__main__":
    main()
