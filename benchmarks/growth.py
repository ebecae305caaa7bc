"""Target 4: how `eval` time grows with n and with the size of the beta grid (should be linear).

Uses a cheap final attack (APGD-CE) so that the growth of ctrobust's own machinery shows, not
AutoAttack's data-dependent cost. Prints seconds, seconds per point or per beta, and the ratio of each
to the smallest setting's (1.0 everywhere = linear).

    .venv/bin/python benchmarks/growth.py
"""

from __future__ import annotations

import argparse
import time

from common import machine, print_table
from ctrobust.config import EvalConfig
from ctrobust.pipeline import resolve_device, run_eval


def run(n: int, n_select: int, n_betas: int, device: str) -> float:
    betas = ",".join(f"{0.70 + 0.29 * k / max(n_betas - 1, 1):.4f}" for k in range(n_betas))
    cfg = EvalConfig(model="smallcnn", threat="linf", n_examples=n, n_select=n_select, betas=betas, attack="apgd-ce",
                     steps=20, select_steps=10, device=device, no_progress=True)
    start = time.perf_counter()
    run_eval(cfg.resolve())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", default="250,500,1000,2000")
    parser.add_argument("--grids", default="5,10,20,30")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"eval growth, smallcnn, Linf, APGD-CE; machine: {machine(resolve_device(args.device))}")
    run(50, 50, 2, args.device)  # warm-up: imports, data, compile
    rows = []
    base = None
    for n in (int(v) for v in args.ns.split(",")):
        s = run(n, n, 5, args.device)
        per = s / n
        base = base or per
        rows.append([f"n={n} (select n, 5 betas)", f"{s:.1f}", f"{1000 * per:.2f} ms/point", f"{per / base:.2f}"])
    base = None
    for g in (int(v) for v in args.grids.split(",")):
        s = run(250, 250, g, args.device)
        per = s / (g + 2)
        base = base or per
        rows.append([f"{g} betas (n=250)", f"{s:.1f}", f"{per:.2f} s/attack run", f"{per / base:.2f}"])
    print_table(rows, ["setting", "seconds", "per unit", "per unit / first"])


if __name__ == "__main__":
    main()
