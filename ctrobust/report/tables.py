"""Tables computed from stored runs: per-run summary, the paper's table, AutoAttack breakdown, corruption grid.

Every number here is derived from a run's stored result (per-example correctness included), so the
HTML, the CSV files, the leaderboards and ``reproduce`` agree by construction.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctrobust.stats import PairedGain, mean_std, pooled_gain, relative_improvement, wilson_interval
from ctrobust.store import identity_key
from ctrobust.uncertainty import run_gain

PAPER_GROUP = ("model", "dataset", "threat", "protocol", "attack", "n_examples")


def setting_key(run: dict[str, Any]) -> str:
    """Runs with the same key differ in the seed alone: the only runs a table may pool."""
    return identity_key({k: v for k, v in run["identity"].items() if k != "seed"})


def gain_of(run: dict[str, Any]) -> PairedGain:
    """A stored run's gain; runs stored before the gain was recorded get it from their per-example outcomes."""
    if "gain" in run:
        return PairedGain.from_dict(run["gain"])
    ct = run["per_example"]["base"] if run["ct"].get("clipped") else run["per_example"]["ct"]
    return run_gain(run["threat"], run["per_example"]["base"], ct)


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
        gain = gain_of(run)
        row.update({"gain_ci_low": gain.low, "gain_ci_high": gain.high, "only_base": gain.only_base,
                    "only_ct": gain.only_ct, "mcnemar_p": gain.p_value, "significant": gain.significant})
        flags = run.get("selection_flags") or {}
        row.update({"flat_curve": flags.get("flat_curve"), "beta_on_grid_edge": flags.get("beta_on_grid_edge"),
                    "base_candidate": run.get("base_candidate", False)})
        row["clipped"] = bool(run["ct"].get("clipped"))
        row["command"] = run.get("command")
        rows.append(row)
    return rows


def _n_cells(run: dict[str, Any]) -> int:
    return len(run.get("corruptions") or []) * len(run.get("severities") or []) or 1


def paper_table(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's layout: per model and threat, mean +- std over seeds, mean beta, relative improvement.

    Relative improvement is the paper's (CT - base) / base of the mean robust accuracies, in percent.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(setting_key(run), []).append(run)
    rows = []
    for members in groups.values():
        members = sorted(members, key=lambda r: r["seed"])
        key = tuple(members[0][k] for k in PAPER_GROUP)
        gain = pooled_gain([gain_of(r) for r in members])
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
            "gain_points_pooled": round(gain.gain_points, 4), "gain_ci_low": round(gain.low, 4),
            "gain_ci_high": round(gain.high, 4), "only_base": gain.only_base, "only_ct": gain.only_ct,
            "mcnemar_p": gain.p_value, "setting": setting_key(members[0])[:12],
            "base_candidate": bool(members[0].get("base_candidate", False)),
        })
    return sorted(rows, key=lambda r: (r["dataset"], r["model"], r["threat"], r["attack"], r["protocol"]))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def paper_table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = ("| Model | Dataset | Threat | Protocol | Attack | n | Seeds | Base (%) | CT (%) | Gain (pts) [95% CI] | "
            "McNemar p | Rel. impr. | beta |\n"
            "|---|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        rel = "n/a" if r["relative_improvement_pct"] is None else f"{r['relative_improvement_pct']:+.2f}%"
        protocol = r["protocol"] + (" (optimistic)" if r["optimistic"] else "")
        lines.append(
            f"| {_md(r['model'])} | {r['dataset']} | {r['threat']} | {protocol} | {r['attack']} | {r['n_examples']} | "
            f"{r['seeds']} | {r['base_robust_mean']:.2f} ± {r['base_robust_std']:.2f} | "
            f"{r['ct_robust_mean']:.2f} ± {r['ct_robust_std']:.2f} | "
            f"{r['gain_points_pooled']:+.2f} [{r['gain_ci_low']:+.2f}, {r['gain_ci_high']:+.2f}] | "
            f"{r['mcnemar_p']:.3g} | {rel} | {r['mean_beta']:.3f} |"
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
