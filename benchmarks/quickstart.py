"""The quickstart's main command, timed stage by stage, with its progress bar checked against the clock.

Runs the real command (``ctrobust eval --model smallcnn --threat linf``, every default: AutoAttack
standard on the first 1000 test points, beta chosen on 500 held-out points) in a subprocess with a
new store, reads the progress bar it draws on stderr, and prints:

- the wall time of each stage: start-up and loading, compiling the CT unit, the beta sweep,
  AutoAttack on the base model, AutoAttack on CT;
- the bar's ETA against the real remaining time, for snapshots taken after the first 10% of the run
  (the target: within a factor of 2), and the whole record as a CSV file.

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
        return "base attack"
    if postfix.startswith("CT"):
        return "CT attack"
    return "start-up"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", default=None, help="write every bar snapshot (clock, %%, ETA, stage) to this CSV")
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
                    print(f"[{now:7.1f} s] {piece.strip()}", file=sys.stderr)
        code = proc.wait()
        reader.join()
        total = time.monotonic() - start
        result_path = Path(tmp) / "out" / "result.json"
        checks = json.loads(result_path.read_text()).get("sanity_checks") if result_path.exists() else None
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
    order = ["start-up", "sweep", "base attack", "CT attack"]
    bounds = [0.0] + [firsts[s] for s in order[1:] if s in firsts] + [total]
    compile_s = sum(c[2] for c in compiles)
    print("| stage | wall time (s) |\n|---|---:|")
    print(f"| start-up: imports, model and data loading, CT coverage | {bounds[1]:.1f} |")
    print(f"| compiling the CT unit (inside the sweep's first beta) | {compile_s:.1f} |")
    for name, a, b in zip(order[1:], bounds[1:], bounds[2:], strict=False):
        print(f"| {name} | {b - a:.1f} |")
    print(f"| total | {total:.1f} |\n")
    if checks and checks.get("seconds"):
        # The checks' own clocks (inside the last stage): their share of the run, the binarization's in it.
        spent = checks["seconds"]
        together = sum(spent.values())
        print("| sanity check | wall time (s) | share of the run |\n|---|---:|---:|")
        for name, sec in spent.items():
            print(f"| {name} | {sec:.1f} | {100 * sec / total:.1f}% |")
        print(f"| all checks together | {together:.1f} | {100 * together / total:.1f}% |\n")

    # ETA against the real remaining time, after the first 10% of the run.
    rows = [(t, pct, eta, total - t) for t, pct, _el, eta, _p in snapshots if eta is not None and t >= 0.1 * total]
    checked = [(t, pct, eta, real) for t, pct, eta, real in rows if real >= 5.0]
    ratios = [eta / real for _t, _pct, eta, real in checked]
    if ratios:
        within = sum(0.5 <= r <= 2.0 for r in ratios)
        print(f"ETA / real remaining over {len(ratios)} snapshots after 10% of the run (remaining >= 5 s): "
              f"min {min(ratios):.2f}, median {sorted(ratios)[len(ratios) // 2]:.2f}, max {max(ratios):.2f}; "
              f"{within} of {len(ratios)} within a factor of 2")
        print("\n| clock (s) | bar % | ETA shown (s) | real remaining (s) | ratio |\n|---:|---:|---:|---:|---:|")
        step = max(len(checked) // 12, 1)
        for t, pct, eta, real in checked[::step]:
            print(f"| {t:.0f} | {pct} | {eta:.0f} | {real:.0f} | {eta / real:.2f} |")
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
