"""Target 2: the cost of choosing beta. `ctrobust eval` with its defaults (APGD-CE 10 steps on a held-out
split over the 30 betas and beta = 1, then AutoAttack on base and CT) against the reference protocol
(AutoAttack standard at each of the 30 betas on the evaluation split, plus the base), same model, same n.

    .venv/bin/python benchmarks/sweep_cost.py --n 500 --n-select 500 --store-dir benchmarks/logs/sweep_cost_n500
    .venv/bin/python benchmarks/sweep_cost.py --n 100 --n-select 50
    .venv/bin/python benchmarks/sweep_cost.py --n 100 --n-select 50 --reference-sample 4   # estimate, see below

Every attack cell's seconds are measured as it runs and kept in the run's store, and the costs below are
sums of those cells: the sweep is the selection cells, the whole protocol adds the final AutoAttacks.
With `--store-dir` the two protocols keep their stores there (one each, so neither reuses the other's
cells) and an interrupted run resumes where it stopped, its finished cells keeping their measured times.
The reference's cost counts its 30 betas and the base; ctrobust re-attacks its chosen beta on the
evaluation split (a duplicate of a selection cell under this protocol), which is not counted.

`--reference-sample K` runs the reference on the base and K evenly spaced betas of the grid only and
scales its time to the whole grid: printed as an estimate, with no accuracy comparison.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from common import machine
from ctrobust.plan.config import EvalConfig
from ctrobust.results.result import RunResult
from ctrobust.results.store import open_store
from ctrobust.stages.pipeline import resolve_device, run_eval


def run(cfg: EvalConfig, path: Path) -> tuple[float, RunResult, list[tuple[float, str, float, float]]]:
    """(wall seconds, result, its cells as (beta, split, robust accuracy, seconds)) of one run on its store."""
    with open_store(path) as store:
        start = time.perf_counter()
        result = run_eval(cfg.resolve(), store=store)
        wall = time.perf_counter() - start
    with sqlite3.connect(path) as db:
        cells = db.execute("SELECT beta, split, robust_accuracy, seconds FROM cells ORDER BY beta").fetchall()
    return wall, result, [(float(b), str(s), float(a), float(t)) for b, s, a, t in cells]


def seconds(cells: list[tuple[float, str, float, float]], split: str, beta: float | None = None) -> float:
    return sum(t for b, s, _, t in cells if s == split and (beta is None or b == beta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--threat", default="linf")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-select", type=int, default=500)
    parser.add_argument("--betas", default="0.70:0.99:0.01")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store-dir", type=Path, default=None,
                        help="keep the two stores here and resume from them (default: a fresh temporary folder)")
    parser.add_argument("--reference-sample", type=int, default=0, metavar="K",
                        help="run the reference on the base and K evenly spaced betas only and scale its time to "
                             "the grid (an estimate); 0 (default): run it all")
    args = parser.parse_args()
    common = dict(model=args.model, threat=args.threat, n_examples=args.n, betas=args.betas, device=args.device,
                  seed=args.seed, no_progress=True)
    ours_cfg = EvalConfig(**common, n_select=args.n_select)
    reference_cfg = EvalConfig(**common, protocol="paper")  # beta chosen by AutoAttack on the evaluation split
    grid = list(ours_cfg.resolve().betas)
    sample = args.reference_sample
    if 0 < sample < len(grid):
        picked = [grid[round(i * (len(grid) - 1) / max(sample - 1, 1))] for i in range(sample)]
        reference_cfg = EvalConfig(**{**common, "betas": ",".join(f"{b:g}" for b in picked)}, protocol="paper")
    print(f"sweep cost: {args.model}, {args.threat}, n={args.n}, n_select={args.n_select}, betas {args.betas}, "
          f"seed {args.seed}; machine: {machine(resolve_device(args.device))}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.store_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        ours_wall, ours, ours_cells = run(ours_cfg, folder / "ours.sqlite")
        ours_sweep, ours_final = seconds(ours_cells, "select"), seconds(ours_cells, "eval")
        print(f"ctrobust defaults: sweep {ours_sweep:.1f} s ({sum(s == 'select' for _, s, _, _ in ours_cells)} "
              f"APGD-CE cells on {args.n_select} held-out points), final AutoAttacks {ours_final:.1f} s, "
              f"wall {ours_wall:.1f} s (with loading and sanity checks; a resumed run's wall is only its rest); "
              f"beta {ours.beta:.2f}; CT robust {ours.ct.robust_accuracy:.4f} (base {ours.base.robust_accuracy:.4f})",
              flush=True)
        ref_wall, ref, ref_cells = run(reference_cfg, folder / "reference.sqlite")
    ref_sweep, ref_base = seconds(ref_cells, "select"), seconds(ref_cells, "eval", 1.0)
    ref_total = ref_sweep + ref_base
    n_ref = sum(s == "select" for _, s, _, _ in ref_cells)
    if 0 < sample < len(grid):
        estimate = ref_total * (len(grid) + 1) / (sample + 1)
        print(f"reference protocol on the base + {sample} of the {len(grid)} betas "
              f"({reference_cfg.betas}): {ref_total:.1f} s, {ref_total / (sample + 1):.1f} s per AutoAttack run")
        print(f"ESTIMATE (not measured): whole reference {estimate:.1f} s; "
              f"ratio reference / ctrobust whole protocol about {estimate / (ours_sweep + ours_final):.1f}x")
        return
    print("reference curve (AutoAttack on the evaluation split; the reference picks its max):")
    print("  beta  robust   seconds")
    for beta, split, acc, secs in ref_cells:
        if split == "select":
            mark = "  <- reference's beta" if beta == ref.beta else ("  <- ctrobust's beta" if beta == ours.beta else "")
            print(f"  {beta:.2f}  {acc:.4f}  {secs:7.1f}{mark}")
    ref_ct = ref.ct.clipped_from if ref.ct.clipped_from is not None else ref.ct.robust_accuracy
    print(f"reference protocol: {n_ref} AutoAttacks over the grid {ref_sweep:.1f} s + base {ref_base:.1f} s = "
          f"{ref_total:.1f} s (wall {ref_wall:.1f} s); beta {ref.beta:.2f}; CT robust {ref_ct:.4f} before clipping "
          f"(base {ref.base.robust_accuracy:.4f})")
    print(f"sweep cost ratio (reference's AutoAttacks over the grid / ctrobust's sweep): {ref_sweep / ours_sweep:.1f}x")
    print(f"whole-protocol ratio (reference's {n_ref + 1} AutoAttacks / ctrobust's sweep + final AutoAttacks): "
          f"{ref_total / (ours_sweep + ours_final):.1f}x")
    print(f"final CT robust accuracy, ctrobust - reference: {100 * (ours.ct.robust_accuracy - ref_ct):+.2f} points "
          f"(the reference's is the max over the grid on the same points, biased upward)")


if __name__ == "__main__":
    main()
