"""Write a run's result as JSON and CSV, and render the summary table."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

CSV_FIELDS = [
    "model", "dataset", "threat", "eps", "attack", "select_attack", "protocol", "seed", "n_examples",
    "variant", "beta", "clean_accuracy", "robust_accuracy", "device", "wall_seconds",
]


def run_name(result: dict[str, Any]) -> str:
    raw = f"{result['model']}_{result['dataset']}_{result['threat']}_{result['attack']}_{result['protocol']}_seed{result['seed']}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).lower()


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    common = {k: result[k] for k in CSV_FIELDS if k in result}
    common["device"] = result["provenance"]["device"]
    rows = []
    for variant, beta in (("base", 1.0), ("ct", result["beta"])):
        part = result[variant]
        rows.append({**common, "variant": variant, "beta": beta,
                     "clean_accuracy": part["clean_accuracy"], "robust_accuracy": part["robust_accuracy"]})
    return rows


def write_result(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / "result.json", out_dir / "result.csv"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(result))
    return json_path, csv_path


def summary_table(result: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    base, ct = result["base"], result["ct"]
    corruptions = result["threat"] == "corruptions"
    metric = "corr. acc" if corruptions else "robust acc"
    if corruptions:
        n_cells = len(result["corruptions"]) * len(result["severities"])
        threat_line = (
            f"corruptions, {n_cells} cells ({len(result['corruptions'])} corruptions x severities "
            f"{','.join(str(s) for s in result['severities'])})"
        )
    else:
        threat_line = f"{result['threat']}  eps={result['eps']:.4g}"
    lines = [
        f"{'':<12}{'clean acc':>12}{metric:>12}",
        f"{'base (ReLU)':<12}{base['clean_accuracy']:>12.2%}{base['robust_accuracy']:>12.2%}",
        f"{'CT':<12}{ct['clean_accuracy']:>12.2%}{ct['robust_accuracy']:>12.2%}",
        "",
        f"chosen beta   {result['beta']:.2f}  (on {result['n_select']} selection points with {result['select_attack']})",
        f"gain          {result['gain_points']:+.2f} points {'mean corruption' if corruptions else 'robust'} accuracy",
        f"threat        {threat_line}",
        f"attack        {result['attack']}",
        f"model         {result['model']} on {result['dataset']}",
        f"n / seed      {result['n_examples']} / {result['seed']}",
        f"protocol      {result['protocol']}",
        f"device        {result['provenance']['device']}",
        f"wall time     {result['wall_seconds']:.1f} s",
    ]
    if result.get("note"):
        lines.append(f"NOTE          {result['note']}")
    return "\n".join(lines)
