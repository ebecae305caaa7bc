"""Tables computed from stored runs: per-run summary, the paper's table, AutoAttack breakdown, corruption grid.

Every number here is derived from a run's stored result (per-example correctness included), so the
HTML, the CSV files, the leaderboards and ``reproduce`` agree by construction.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctrobust.stats import McNemar, mcnemar_exact, mean_std, relative_improvement, wilson_interval

PAPER_GROUP = ("model", "dataset", "threat", "protocol", "attack", "n_examples")


def _interval(acc: float, n: int) -> tuple[float, float]:
    return wilson_interval(round(acc * n), n)


def summary_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: accuracies with 95% Wilson intervals, chosen beta, McNemar CT vs base."""
    rows = []
    for run in runs:
        n = int(run["n_examples"])
        row: dict[str, Any] = {
            "model": run["model"], "dataset": run["dataset"], "threat": run["threat"], "eps": run.get("eps"),
            "attack": run["attack"], "protocol": run["protocol"], "seed": run["seed"], "n": n, "beta": run["beta"],
        }
        for variant in ("base", "ct"):
            for metric in ("clean_accuracy", "robust_accuracy"):
                acc = float(run[variant][metric])
                low, high = _interval(acc, n) if metric == "clean_accuracy" or run["threat"] != "corruptions" else (
                    _interval(acc, n * _n_cells(run)))
                row[f"{variant}_{metric}"], row[f"{variant}_{metric}_low"], row[f"{variant}_{metric}_high"] = acc, low, high
        row["gain_points"] = run["gain_points"]
        test = paired_test(run)
        row.update({"only_base": test.only_base, "only_ct": test.only_ct, "mcnemar_p": test.p_value})
        row["clipped"] = bool(run["ct"].get("clipped"))
        row["command"] = run.get("command")
        rows.append(row)
    return rows


def _n_cells(run: dict[str, Any]) -> int:
    return len(run.get("corruptions") or []) * len(run.get("severities") or []) or 1


def paired_test(run: dict[str, Any]) -> McNemar:
    """McNemar on robust correctness (for corruptions: pooled over example x cell pairs)."""
    base, ct = run["per_example"]["base"], run["per_example"]["ct"]
    if run["threat"] == "corruptions":
        keys = [k for k in base if k != "clean"]
        return mcnemar_exact([v for k in keys for v in base[k]], [v for k in keys for v in ct[k]])
    return mcnemar_exact(base["robust"], ct["robust"])


def paper_table(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's layout: per model and threat, mean +- std over seeds, mean beta, relative improvement.

    Relative improvement is the paper's (CT - base) / base of the mean robust accuracies, in percent.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in PAPER_GROUP), []).append(run)
    rows = []
    for key, members in groups.items():
        members = sorted(members, key=lambda r: r["seed"])
        base_m, base_s = mean_std([100 * float(r["base"]["robust_accuracy"]) for r in members])
        ct_m, ct_s = mean_std([100 * float(r["ct"]["robust_accuracy"]) for r in members])
        clean_b, _ = mean_std([100 * float(r["base"]["clean_accuracy"]) for r in members])
        clean_c, _ = mean_std([100 * float(r["ct"]["clean_accuracy"]) for r in members])
        beta_m, _ = mean_std([float(r["beta"]) for r in members])
        rows.append({
            **dict(zip(PAPER_GROUP, key)),
            "seeds": ",".join(str(r["seed"]) for r in members),
            "base_robust_mean": round(base_m, 4), "base_robust_std": round(base_s, 4),
            "ct_robust_mean": round(ct_m, 4), "ct_robust_std": round(ct_s, 4),
            "relative_improvement_pct": _round(relative_improvement(base_m, ct_m)),
            "mean_beta": round(beta_m, 4),
            "base_clean_mean": round(clean_b, 4), "ct_clean_mean": round(clean_c, 4),
            "optimistic": key[3] == "paper",
        })
    return sorted(rows, key=lambda r: (r["dataset"], r["model"], r["threat"], r["attack"], r["protocol"]))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def paper_table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = ("| Model | Dataset | Threat | Protocol | Attack | n | Seeds | Base (%) | CT (%) | Rel. impr. | beta |\n"
            "|---|---|---|---|---|---:|---|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        rel = "n/a" if r["relative_improvement_pct"] is None else f"{r['relative_improvement_pct']:+.2f}%"
        protocol = r["protocol"] + (" (optimistic)" if r["optimistic"] else "")
        lines.append(
            f"| {_md(r['model'])} | {r['dataset']} | {r['threat']} | {protocol} | {r['attack']} | {r['n_examples']} | "
            f"{r['seeds']} | {r['base_robust_mean']:.2f} ± {r['base_robust_std']:.2f} | "
            f"{r['ct_robust_mean']:.2f} ± {r['ct_robust_std']:.2f} | {rel} | {r['mean_beta']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Markdown-safe cell: no pipes, no raw HTML."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def breakdown_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    """AutoAttack's robust accuracy after each of its attacks, for base and CT (empty for other attacks)."""
    base, ct = run["base"].get("robust_accuracy_after"), run["ct"].get("robust_accuracy_after")
    if not base or not ct:
        return []
    return [{"attack": name, "base": base[name], "ct": ct.get(name)} for name in base]


def corruption_delta(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """CT minus base accuracy per corruption and severity, on the evaluation split."""
    base, ct = run["base"].get("cells") or {}, run["ct"].get("cells") or {}
    return {c: {s: ct[c][s] - acc for s, acc in sev.items()} for c, sev in base.items()}


def selection_curve(run: dict[str, Any]) -> list[tuple[float, float]]:
    return sorted((float(b), float(acc)) for b, acc in run["select_curve"].items())


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fieldnames: list[str] = []
    for row in rows:
        fieldnames += [k for k in row if k not in fieldnames]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path
