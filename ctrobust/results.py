"""Write a run's result as JSON and CSV, and render the summary table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ctrobust.outputs import safe_name

CSV_FIELDS = [
    "run_id", "model", "dataset", "threat", "eps", "attack", "select_attack", "protocol", "seed", "n_examples",
    "variant", "beta", "clean_accuracy", "robust_accuracy", "gain_points", "gain_ci_low", "gain_ci_high",
    "only_base", "only_ct", "mcnemar_p", "base_candidate", "flat_curve", "beta_on_grid_edge", "device", "wall_seconds",
]


def run_name(result: dict[str, Any]) -> str:
    """A readable prefix and the digest of the run's identity: runs that differ in any setting never share it."""
    raw = f"{result['model']}_{result['dataset']}_{result['threat']}_{result['attack']}_{result['protocol']}_seed{result['seed']}"
    return f"{safe_name(raw)}_{result['run_id']}"


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    common = {k: result[k] for k in CSV_FIELDS if k in result}
    common["device"] = result["provenance"]["device"]
    gain, flags = result["gain"], result["selection_flags"]
    rows = []
    for variant, beta in (("base", 1.0), ("ct", result["beta"])):
        part = result[variant]
        row = {**common, "variant": variant, "beta": beta,
               "clean_accuracy": part["clean_accuracy"], "robust_accuracy": part["robust_accuracy"]}
        if variant == "ct":  # the gain is CT's row: CT minus base on the same points
            row.update({"gain_points": gain["gain_points"], "gain_ci_low": gain["ci_low_points"],
                        "gain_ci_high": gain["ci_high_points"], "only_base": gain["only_base"],
                        "only_ct": gain["only_ct"], "mcnemar_p": gain["mcnemar_p"],
                        "base_candidate": result["base_candidate"], "flat_curve": flags["flat_curve"],
                        "beta_on_grid_edge": flags["beta_on_grid_edge"] or ""})
        rows.append(row)
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
    from ctrobust.stats import PairedGain
    from ctrobust.uncertainty import SelectionFlags, gain_lines

    base, ct = result["base"], result["ct"]
    gain_text, *gain_warnings = gain_lines(PairedGain.from_dict(result["gain"]))
    f = result["selection_flags"]
    flags = SelectionFlags(f["flat_curve"], f["beta_on_grid_edge"], f["no_ct"], *f["best_band_points"],
                           f["suggested_betas"])
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
        f"chosen beta   {result['beta']:.2f}  (on {result['n_select']} selection points with {result['select_attack']}; "
        f"{'beta = 1, the original model, was a candidate' if result['base_candidate'] else 'candidates below 1 only'})",
        f"gain          {gain_text}",
        f"threat        {threat_line}",
        f"attack        {result['attack']}",
        f"model         {result['model']} on {result['dataset']}",
        f"n / seed      {result['n_examples']} / {result['seed']}",
        f"protocol      {result['protocol']}",
        f"device        {result['provenance']['device']}",
        f"wall time     {result['wall_seconds']:.1f} s",
    ]
    sanity = result.get("sanity_checks")
    if sanity:
        from ctrobust.sanity import SanityReport

        checks = SanityReport(**{k: sanity[k] for k in ("transfer", "budget", "logits", "breakdown")})
        lines += ["", "sanity checks (against weak attacks)", *[f"  {line}" for line in checks.lines()]]
    warnings = [*gain_warnings, *flags.lines(result["beta"]), *(sanity["warnings"] if sanity else [])]
    if warnings:
        lines.append("")
        lines += [f"WARNING       {w}" for w in warnings]
    if result.get("note"):
        lines.append(f"NOTE          {result['note']}")
    return "\n".join(lines)
