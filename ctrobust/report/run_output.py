"""Write a run's result as JSON and CSV, and render the summary table for the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ctrobust.outputs import safe_name
from ctrobust.result import RunResult

CSV_FIELDS = [
    "run_id", "model", "dataset", "threat", "eps", "attack", "select_attack", "protocol", "seed", "n_examples",
    "variant", "beta", "clean_correct", "robust_correct", "n_scored", "clean_accuracy", "robust_accuracy",
    "gain_points", "gain_ci_low", "gain_ci_high", "only_base", "only_ct", "mcnemar_p", "base_candidate",
    "flat_curve", "beta_on_grid_edge", "binarization", "device", "wall_seconds", "command",
]


def run_name(result: RunResult) -> str:
    """A readable prefix and the digest of the run's identity: runs that differ in any setting never share it."""
    raw = (f"{result.model}_{result.dataset}_{result.threat.value}_{result.attack}_{result.protocol.value}"
           f"_seed{result.seed}")
    return f"{safe_name(raw)}_{result.run_id}"


def csv_rows(result: RunResult) -> list[dict[str, Any]]:
    common = {"run_id": result.run_id, "model": result.model, "dataset": result.dataset,
              "threat": result.threat.value, "eps": result.eps, "attack": result.attack,
              "select_attack": result.select_attack, "protocol": result.protocol.value, "seed": result.seed,
              "n_examples": result.n_examples, "device": result.provenance.get("device"),
              "wall_seconds": result.wall_seconds, "command": result.command}
    gain, flags = result.gain, result.flags
    rows = []
    for variant, arm in (("base", result.base), ("ct", result.ct)):
        counts = arm.counts
        row = {**common, "variant": variant, "beta": arm.beta, "clean_correct": counts.clean_correct,
               "robust_correct": counts.robust_correct, "n_scored": counts.n * counts.cells,
               "clean_accuracy": arm.clean_accuracy, "robust_accuracy": arm.robust_accuracy,
               "binarization": result.binarization.get(variant, "")}
        if variant == "ct":  # the gain is CT's row: CT minus base on the same points
            row.update({"gain_points": gain.gain_points, "gain_ci_low": gain.low, "gain_ci_high": gain.high,
                        "only_base": gain.only_base, "only_ct": gain.only_ct, "mcnemar_p": gain.p_value,
                        "base_candidate": result.base_candidate, "flat_curve": flags.flat,
                        "beta_on_grid_edge": flags.edge or ""})
        rows.append(row)
    return rows


def write_result(result: RunResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / "result.json", out_dir / "result.csv"
    json_path.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    import pandas as pd

    pd.DataFrame(csv_rows(result), columns=CSV_FIELDS).to_csv(csv_path, index=False)
    return json_path, csv_path


def summary_table(result: RunResult) -> str:
    """A plain-text table for the terminal."""
    import pandas as pd

    from ctrobust.uncertainty import gain_lines

    base, ct = result.base, result.ct
    gain_text, *gain_warnings = gain_lines(result.gain)
    norm = result.threat.is_norm_bounded
    metric = "robust acc" if norm else "corr. acc"
    if norm:
        threat_line = f"{result.threat.value}  eps={result.eps:.4g}"
    else:
        threat_line = (
            f"corruptions, {len(result.corruptions) * len(result.severities)} cells ({len(result.corruptions)} "
            f"corruptions x severities {','.join(str(s) for s in result.severities)})"
        )
    accuracies = pd.DataFrame({"clean acc": [f"{base.clean_accuracy:.2%}", f"{ct.clean_accuracy:.2%}"],
                               metric: [f"{base.robust_accuracy:.2%}", f"{ct.robust_accuracy:.2%}"]},
                              index=["base (ReLU)", "CT"])
    lines = [
        accuracies.to_string(),
        "",
        f"chosen beta   {result.beta:.2f}  (on {result.n_select} selection points with {result.select_attack}; "
        f"{'beta = 1, the original model, was a candidate' if result.base_candidate else 'candidates below 1 only'})",
        f"gain          {gain_text}",
        f"threat        {threat_line}",
        f"attack        {result.attack}",
        f"model         {result.model} on {result.dataset}",
        f"n / seed      {result.n_examples} / {result.seed}",
        f"protocol      {result.protocol.value}",
        f"device        {result.provenance.get('device')}",
        f"wall time     {result.wall_seconds:.1f} s",
    ]
    sanity = result.sanity
    if sanity is not None:
        lines += ["", "sanity checks (against weak attacks)",
                  *[f"  {line}" for line in sanity.lines() if not line.startswith("WARNING")]]
    warnings = [*gain_warnings, *result.flags.lines(result.beta), *(sanity.warnings if sanity else [])]
    if warnings:
        lines.append("")
        lines += [f"WARNING       {w}" for w in warnings]
    if result.note:
        lines.append(f"NOTE          {result.note}")
    return "\n".join(lines)
