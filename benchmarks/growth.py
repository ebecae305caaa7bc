"""Target 4: how `eval` time grows with n and with the size of the beta grid (should be linear).

Uses a cheap final attack (APGD-CE) so that the growth of ctrobust's own machinery shows, not
AutoAttack's data-dependent cost. Prints seconds, seconds per point or per beta, and the ratio of each
to the smallest setting's (1.0 everywhere = linear).

    .venv/bin/python benchmarks/growth.py
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from common import machine, print_table
from ctrobust.plan.config import EvalConfig
from ctrobust.results.store import open_store
from ctrobust.stages.pipeline import resolve_device, run_eval


def run(n: int, n_select: int, n_betas: int, device: str) -> tuple[float, float, float]:
    """Wall seconds of one eval, and the attack seconds of its sweep cells and of its final cells."""
    betas = ",".join(f"{0.70 + 0.29 * k / max(n_betas - 1, 1):.4f}" for k in range(n_betas))
    cfg = EvalConfig(model="smallcnn", threat="linf", n_examples=n, n_select=n_select, betas=betas, attack="apgd-ce",
                     steps=20, select_steps=10, device=device, no_progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite"
        with open_store(path) as store:
            start = time.perf_counter()
            run_eval(cfg.resolve(), store=store)
            wall = time.perf_counter() - start
        with sqlite3.connect(path) as db:
            split = dict(db.execute("SELECT split, SUM(seconds) FROM cells GROUP BY split").fetchall())
    return wall, float(split.get("select", 0.0)), float(split.get("eval", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", default="500,1000,2000,5000")
    parser.add_argument("--grids", default="", help="grid sizes to time at n=250 (e.g. 5,10,20,30); default none")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"eval growth, smallcnn, Linf, APGD-CE; machine: {machine(resolve_device(args.device))}")
    run(50, 50, 2, args.device)  # warm-up: imports, data, compile
    rows = []
    base = None
    for n in (int(v) for v in args.ns.split(",")):
        wall, sweep, final = run(n, n, 5, args.device)  # 5 betas and beta = 1: 6 sweep cells, 2 final cells
        per = wall / n
        base = base or per
        rows.append([f"n={n} (select n, 5 betas)", f"{wall:.1f}", f"{1000 * per:.2f}", f"{per / base:.2f}",
                     f"{1000 * sweep / (6 * n):.2f}", f"{1000 * final / (2 * n):.2f}", f"{wall - sweep - final:.1f}"])
    print_table(rows, ["setting", "seconds", "ms/point", "per point / first", "sweep ms/point/beta",
                       "final ms/point/model", "other s"])
    base = None
    rows = []
    for g in (int(v) for v in args.grids.split(",") if v):
        wall, _, _ = run(250, 250, g, args.device)
        per = wall / (g + 2)
        base = base or per
        rows.append([f"{g} betas (n=250)", f"{wall:.1f}", f"{per:.2f} s/attack run", f"{per / base:.2f}"])
    if rows:
        print_table(rows, ["setting", "seconds", "per unit", "per unit / first"])


if __name__ == "__main__":
    main()
