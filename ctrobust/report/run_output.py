"""Write a run's result as JSON and CSV, and render the summary table for the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctrobust.outputs import safe_name, spreadsheet_safe

if TYPE_CHECKING:
    from ctrobust.results.result import RunResult

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

    rows = [{k: spreadsheet_safe(v) for k, v in row.items()} for row in csv_rows(result)]
    pd.DataFrame(rows, columns=CSV_FIELDS).to_csv(csv_path, index=False)
    return json_path, csv_path


def _accuracy_cells(result: RunResult) -> list[tuple[str, float, tuple[float, float], float, tuple[float, float]]]:
    """(arm, clean accuracy, its 95% Wilson interval, robust accuracy, its interval) for base and CT."""
    from ctrobust.results.stats import wilson_interval

    rows = []
    for label, arm in (("base (ReLU)", result.base), (f"CT (beta {result.ct.beta:.2f})", result.ct)):
        c = arm.counts
        rows.append((label, c.clean_accuracy, wilson_interval(c.clean_correct, c.n), c.robust_accuracy,
                     wilson_interval(c.robust_correct, c.n * c.cells)))
    return rows


def _facts(result: RunResult) -> list[tuple[str, str]]:
    """The lines under the accuracies: chosen beta, gain with its interval and test, threat, attack, ..."""
    from ctrobust.results.uncertainty import gain_lines

    if result.threat.is_norm_bounded:
        threat_line = f"{result.threat.value}  eps={result.eps:.4g}"
    else:
        threat_line = (
            f"corruptions, {len(result.corruptions) * len(result.severities)} cells ({len(result.corruptions)} "
            f"corruptions x severities {','.join(str(s) for s in result.severities)})"
        )
    facts = [
        ("chosen beta", f"{result.beta:.2f}  (on {result.n_select} selection points with {result.select_attack}; "
         f"{'beta = 1, the original model, was a candidate' if result.base_candidate else 'candidates below 1 only'})"),
        ("gain", gain_lines(result.gain)[0]),
        ("threat", threat_line),
        ("attack", result.attack),
        ("model", f"{result.model} on {result.dataset}"),
        ("n / seed", f"{result.n_examples} / {result.seed}"),
        ("protocol", result.protocol.value),
        ("device", str(result.provenance.get("device"))),
        ("wall time", f"{result.wall_seconds:.1f} s"),
    ]
    if result.binarization:
        facts.append(("binarization", ", ".join(f"{arm} {verdict}" for arm, verdict in result.binarization.items())))
    return facts


def _warnings(result: RunResult) -> list[str]:
    from ctrobust.results.uncertainty import gain_lines

    sanity = result.sanity
    return [*gain_lines(result.gain)[1:], *result.flags.lines(result.beta), *(sanity.warnings if sanity else [])]


def summary_table(result: RunResult) -> str:
    """The plain-text summary the terminal prints (and ``str(result)``): accuracies with their 95% intervals,
    the chosen beta, the gain with its interval and McNemar test, the sanity checks and every warning."""
    metric = "robust acc" if result.threat.is_norm_bounded else "corr. acc"
    rows = _accuracy_cells(result)
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'clean acc':<24}  {metric}"]
    for label, clean, (cl, ch), robust, (rl, rh) in rows:
        lines.append(f"{label:<{width}}  {f'{clean:.2%} [{cl:.1%}, {ch:.1%}]':<24}  {robust:.2%} [{rl:.1%}, {rh:.1%}]")
    lines += ["", *(f"{name:<13} {text}" for name, text in _facts(result))]
    sanity = result.sanity
    if sanity is not None:
        lines += ["", "sanity checks (against weak attacks)",
                  *[f"  {line}" for line in sanity.lines() if not line.startswith("WARNING")]]
    warnings = _warnings(result)
    if warnings:
        lines.append("")
        lines += [f"WARNING       {w}" for w in warnings]
    if result.note:
        lines.append(f"NOTE          {result.note}")
    return "\n".join(lines)


def summary_html(result: RunResult) -> str:
    """The same summary as an HTML fragment (a notebook's display of a RunResult)."""
    from html import escape

    metric = "robust accuracy" if result.threat.is_norm_bounded else "corruption accuracy"
    head = (f"<tr><th></th><th>clean accuracy</th><th>95% interval</th><th>{metric}</th><th>95% interval</th></tr>")
    body = "".join(
        f"<tr><th>{escape(label)}</th><td>{clean:.2%}</td><td>[{cl:.1%}, {ch:.1%}]</td>"
        f"<td>{robust:.2%}</td><td>[{rl:.1%}, {rh:.1%}]</td></tr>"
        for label, clean, (cl, ch), robust, (rl, rh) in _accuracy_cells(result))
    facts = "".join(f"<tr><th style='text-align:left'>{escape(name)}</th><td style='text-align:left'>{escape(text)}"
                    "</td></tr>" for name, text in _facts(result))
    notes = [*(f"WARNING: {w}" for w in _warnings(result)), *([f"NOTE: {result.note}"] if result.note else [])]
    checks = result.sanity.lines() if result.sanity is not None else []
    parts = [f"<div class='ctrobust-result'><strong>ctrobust run {escape(result.run_id)}</strong>",
             f"<table>{head}{body}</table>", f"<table>{facts}</table>"]
    if checks:
        parts.append("<details><summary>sanity checks (against weak attacks)</summary><ul>"
                     + "".join(f"<li>{escape(line)}</li>" for line in checks if not line.startswith("WARNING"))
                     + "</ul></details>")
    if notes:
        parts.append("<ul>" + "".join(f"<li style='color:#b00'>{escape(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts) + "</div>"
