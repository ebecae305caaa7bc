"""The quickstart's main command, timed stage by stage, with its progress bar checked against the clock.

Runs the real command (``ctrobust eval --model smallcnn --threat linf``, every default: AutoAttack
standard on the first 1000 test points, beta chosen on 500 held-out points) in a subprocess with a
new store, reads the progress bar it draws on stderr, and prints:

- the wall time of each stage: start-up and loading, the execution probe (which compiles the CT unit),
  the beta sweep, the final attack (each of AutoAttack's attacks on both arms, with the time of each
  provisional table), the sanity checks;
- the bar's ETA against the real remaining time, for every snapshot from 5 s into the run (the
  target: within a factor of 2), and the whole record as a CSV file;
- the physical bound: the model's forward and backward as the probe timed it, and the final attack's
  APGD-CE stage, in GFLOP/s of the model's convolutions and matmuls, against a dense matmul on the same
  cores.

Run it with nothing else running on the machine:

    .venv/bin/python benchmarks/quickstart.py [--log benchmarks/logs/quickstart.csv] [-- extra eval options]

Extra options after ``--`` go to ``ctrobust eval`` (e.g. ``-- --n-examples 100 --n-select 100`` for a
smoke test).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BAR = re.compile(r"ctrobust eval:\s+(\d+)%\|[^|]*\| \[([\d:]+)<([\d:?]+)\](?:, (.*))?")
LOG_COMPILED = re.compile(r"compiled the CT unit \((.*)\) in ([\d.]+) s")
LOG_TABLE = re.compile(r"^after (\S+) \((\d+) of (\d+) AutoAttack attacks")


def seconds(text: str) -> float | None:
    if "?" in text:
        return None
    parts = [int(p) for p in text.split(":")]
    total = 0
    for p in parts:
        total = total * 60 + p
    return float(total)


def stage_of(postfix: str) -> str:
    if postfix.startswith("select"):
        return "sweep"
    if postfix.startswith("base"):
        return "final attack"
    if postfix.startswith("sanity"):
        return "sanity checks"
    return "start-up"


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """A dense float32 matmul on this process's torch threads: the cores' practical peak."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def model_flops(forward_and_backward: bool) -> float:
    """FLOPs of the shipped model's convolutions and matmuls for one image (input gradient only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ctrobust.models import load_model
    from ctrobust.threats import ThreatModel

    model = load_model("smallcnn", "fashion-mnist", None, threat=ThreatModel.LINF).model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, 1, 32, 32, requires_grad=forward_and_backward)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if forward_and_backward:
            out.sum().backward()
    return float(counter.get_total_flops())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", default=None, help="write every bar snapshot (clock, %%, ETA, stage) to this CSV")
    parser.add_argument("--outcomes", default=None,
                        help="write the run's per-point outcomes (both arms) with its command and commit to this JSON")
    parser.add_argument("extra", nargs="*", help="options passed on to ctrobust eval (after --)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "ctrobust.cli.main", "eval", "--model", "smallcnn", "--threat", "linf",
                   "--store", str(Path(tmp) / "store.sqlite"), "--out", str(Path(tmp) / "out"), *args.extra]
        env = {**os.environ, "COLUMNS": "200"}
        env.pop("CTROBUST_CTU", None)
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None and proc.stdout is not None
        snapshots: list[tuple[float, int, float, float | None, str]] = []
        compiles: list[tuple[float, str, float]] = []
        tables: list[tuple[float, str]] = []
        stdout_chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: stdout_chunks.append(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
        buffer = ""
        while True:
            chunk = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(4096)
            if not chunk:
                break
            now = time.monotonic() - start
            buffer += chunk.decode(errors="replace")
            *pieces, buffer = re.split(r"[\r\n]", buffer)
            for piece in pieces:
                if m := BAR.search(piece):
                    snapshots.append((now, int(m.group(1)), seconds(m.group(2)) or 0.0, seconds(m.group(3)),
                                      (m.group(4) or "").strip()))
                elif m := LOG_COMPILED.search(piece):
                    compiles.append((now, m.group(1), float(m.group(2))))
                elif piece.strip():
                    if m := LOG_TABLE.search(piece.strip()):
                        tables.append((now, m.group(1)))
                    print(f"[{now:7.1f} s] {piece.strip()}", file=sys.stderr)
        code = proc.wait()
        reader.join()
        total = time.monotonic() - start
        result_path = Path(tmp) / "out" / "result.json"
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        if args.outcomes and result:
            kept = {k: result.get(k) for k in ("command", "beta", "seed", "execution")}
            kept["git_commit"] = (result.get("provenance") or {}).get("git_commit")
            Path(args.outcomes).write_text(json.dumps({**kept, "per_example": result.get("per_example")}) + "\n")
        checks = result.get("sanity_checks")
    print((b"".join(stdout_chunks)).decode(errors="replace"))
    if code != 0:
        print(f"ctrobust eval exited {code}", file=sys.stderr)
        return code

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; command: {' '.join(command[3:8])} {' '.join(args.extra)}")
    print(f"total wall time: {total:.1f} s ({total / 60:.1f} min)\n")

    # Stage times: a stage runs from its first snapshot to the next stage's first snapshot.
    firsts: dict[str, float] = {}
    for t, _pct, _el, _eta, postfix in snapshots:
        firsts.setdefault(stage_of(postfix), t)
    order = ["start-up", "sweep", "final attack", "sanity checks"]
    present = [s for s in order[1:] if s in firsts]
    bounds = [0.0] + [firsts[s] for s in present] + [total]
    compile_s = sum(c[2] for c in compiles)
    print("| stage | wall time (s) |\n|---|---:|")
    print(f"| start-up: imports, model and data loading, CT coverage, execution probe | {bounds[1]:.1f} |")
    print(f"| (of which compiling the CT unit, in the probe) | {compile_s:.1f} |")
    for name, a, b in zip(present, bounds[1:], bounds[2:], strict=False):
        print(f"| {name} | {b - a:.1f} |")
    print(f"| total | {total:.1f} |\n")
    if tables and "final attack" in firsts:
        print("| AutoAttack attack (both arms) | wall time (s) | provisional table at (s) |\n|---|---:|---:|")
        previous = firsts["final attack"]
        for t, attack in tables:
            print(f"| {attack} | {t - previous:.1f} | {t:.1f} |")
            previous = t
        print(f"\nfirst provisional table (after APGD-CE on both arms): {tables[0][0]:.1f} s into the run\n")
    if checks and checks.get("seconds"):
        # The checks' own clocks (inside the last stage): their share of the run, the binarization's in it.
        spent = checks["seconds"]
        together = sum(spent.values())
        print("| sanity check | wall time (s) | share of the run |\n|---|---:|---:|")
        for name, sec in spent.items():
            print(f"| {name} | {sec:.1f} | {100 * sec / total:.1f}% |")
        print(f"| all checks together | {together:.1f} | {100 * together / total:.1f}% |\n")

    # ETA against the real remaining time, from 5 s into the run (the bar appears after the probe).
    rows = [(t, pct, eta, total - t) for t, pct, _el, eta, _p in snapshots if eta is not None and t >= 5.0]
    checked = [(t, pct, eta, real) for t, pct, eta, real in rows if real >= 5.0]
    ratios = [eta / real for _t, _pct, eta, real in checked]
    if ratios:
        within = sum(0.5 <= r <= 2.0 for r in ratios)
        print(f"ETA / real remaining over {len(ratios)} snapshots from 5 s into the run (remaining >= 5 s): "
              f"min {min(ratios):.2f}, median {sorted(ratios)[len(ratios) // 2]:.2f}, max {max(ratios):.2f}; "
              f"{within} of {len(ratios)} within a factor of 2; first ETA shown at {checked[0][0]:.1f} s")
        print("\n| clock (s) | bar % | ETA shown (s) | real remaining (s) | ratio |\n|---:|---:|---:|---:|---:|")
        step = max(len(checked) // 12, 1)
        for t, pct, eta, real in [*checked[:3], *checked[3::step]]:
            print(f"| {t:.0f} | {pct} | {eta:.0f} | {real:.0f} | {eta / real:.2f} |")
    execution = result.get("execution") or {}
    per_image = execution.get("seconds_per_image") or {}
    if per_image.get("base forward+backward"):
        peak = matmul_gflops()
        fb = model_flops(True)
        probe = fb / per_image["base forward+backward"] / 1e9
        print(f"\nphysical bound: a dense 2048x2048 float32 matmul reaches {peak:.0f} GFLOP/s on these cores; the "
              f"original model's forward and backward ({fb / 1e6:.1f} MFLOP per image in convolutions and matmuls, "
              f"micro-batch {execution.get('micro_batch')}) runs at {probe:.0f} GFLOP/s ({100 * probe / peak:.0f}%)")
        if tables and "final attack" in firsts:
            n = result["n_examples"]
            attacked = round(n * result["base"]["clean_accuracy"]) + (
                round(n * result["ct"]["clean_accuracy"]) if result["beta"] != 1.0 else 0)
            stage = tables[0][0] - firsts["final attack"]
            achieved = attacked * 102 * fb / stage / 1e9  # 100 iterations + the start and the last check
            print(f"APGD-CE in the final attack: {attacked} points x 102 forward+backward passes in {stage:.1f} s = "
                  f"{achieved:.0f} GFLOP/s of the model's own work ({100 * achieved / peak:.0f}% of the matmul rate; "
                  "CT's smooth units are extra work not counted here)")
    if args.log:
        with open(args.log, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["clock_s", "percent", "elapsed_shown_s", "eta_shown_s", "real_remaining_s", "stage"])
            for t, pct, el, eta, postfix in snapshots:
                writer.writerow([f"{t:.2f}", pct, el, "" if eta is None else eta, f"{total - t:.2f}", postfix])
        print(f"\nwrote {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
