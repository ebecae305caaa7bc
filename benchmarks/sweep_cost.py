"""Target 2: the cost of choosing beta. `ctrobust eval` with its defaults (APGD-CE 10 steps on a held-out
split over the 30 betas, then AutoAttack on base and CT) against the reference protocol (AutoAttack
standard at each of the 30 betas on the evaluation split, plus the base), same model, same n.

    .venv/bin/python benchmarks/sweep_cost.py --n 1000 --n-select 500     # the defaults: hours on a CPU
    .venv/bin/python benchmarks/sweep_cost.py --n 100 --n-select 50
    .venv/bin/python benchmarks/sweep_cost.py --n 100 --n-select 50 --reference-sample 4   # estimate, see below

The reference's cost is a sum of AutoAttack runs, one per beta plus the base; on a GPU each run of
smallcnn costs about the same whatever n (Square's 5000 queries are sequential), so the full reference
does not fit a short GPU check. `--reference-sample K` runs it on the base and K evenly spaced betas of
the grid and scales its time to the whole grid: printed as an estimate, with no accuracy comparison.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import machine
from ctrobust.config import EvalConfig
from ctrobust.pipeline import resolve_device, run_eval
from ctrobust.result import RunResult
from ctrobust.store import open_store


def timed(cfg: EvalConfig) -> tuple[float, RunResult]:
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "store.sqlite") as store:
        start = time.perf_counter()
        result = run_eval(cfg.resolve(), store=store)  # a fresh store: nothing reused from earlier runs
        return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--threat", default="linf")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-select", type=int, default=500)
    parser.add_argument("--betas", default="0.70:0.99:0.01")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-sample", type=int, default=0, metavar="K",
                        help="run the reference on the base and K evenly spaced betas only and scale its time to "
                             "the grid (an estimate); 0 (default): run it all")
    args = parser.parse_args()
    common = dict(model=args.model, threat=args.threat, n_examples=args.n, betas=args.betas, device=args.device,
                  seed=args.seed, no_progress=True)
    ours_cfg = EvalConfig(**common, n_select=args.n_select)
    # The reference: beta chosen by AutoAttack on the evaluation split itself (the CT result at the chosen
    # beta is then read from its selection cell, so it runs 31 AutoAttacks: the base and 30 betas).
    reference_cfg = EvalConfig(**common, protocol="paper")
    grid = list(ours_cfg.resolve().betas)
    sample = args.reference_sample
    if 0 < sample < len(grid):
        picked = [grid[round(i * (len(grid) - 1) / max(sample - 1, 1))] for i in range(sample)]
        reference_cfg = EvalConfig(**{**common, "betas": ",".join(f"{b:g}" for b in picked)}, protocol="paper")
    print(f"sweep cost: {args.model}, {args.threat}, n={args.n}, betas {args.betas}; "
          f"machine: {machine(resolve_device(args.device))}")
    ours_s, ours = timed(ours_cfg)
    print(f"ctrobust defaults: {ours_s:.1f} s; beta {ours.beta:.2f}; CT robust {ours.ct.robust_accuracy:.4f} "
          f"(base {ours.base.robust_accuracy:.4f})", flush=True)
    ref_s, ref = timed(reference_cfg)
    if 0 < sample < len(grid):
        estimate = ref_s * (len(grid) + 1) / (sample + 1)
        print(f"reference protocol on the base + {sample} of the {len(grid)} betas "
              f"({reference_cfg.betas}): {ref_s:.1f} s, {ref_s / (sample + 1):.1f} s per AutoAttack run")
        print(f"ESTIMATE (not measured): whole reference {estimate:.1f} s; "
              f"wall-time ratio reference / ctrobust about {estimate / ours_s:.1f}x")
        return
    ref_ct = ref.ct.clipped_from if ref.ct.clipped_from is not None else ref.ct.robust_accuracy
    print(f"reference protocol: {ref_s:.1f} s; beta {ref.beta:.2f}; CT robust {ref_ct:.4f} before clipping "
          f"(base {ref.base.robust_accuracy:.4f})")
    print(f"wall-time ratio reference / ctrobust: {ref_s / ours_s:.1f}x")
    print(f"final CT robust accuracy, ctrobust - reference: {100 * (ours.ct.robust_accuracy - ref_ct):+.2f} points "
          f"(the reference's is the max over the grid on the same points, biased upward)")


if __name__ == "__main__":
    main()
