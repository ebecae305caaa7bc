"""Tables computed from stored runs: per-run summary, the paper's table, AutoAttack breakdown, corruption grid.

Every number here is derived from a run's stored result (per-example correctness included), so the
HTML, the CSV files, the leaderboards and ``reproduce`` agree by construction.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctrobust.result import RunResult
from ctrobust.stats import mean_std, pooled_gain, relative_improvement, wilson_interval

PAPER_GROUP = ("model", "dataset", "threat", "protocol", "attack", "n_examples")


def summary_rows(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per run: accuracies (k of n) with 95% Wilson intervals, chosen beta, the paired gain."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.run_id, "model": run.model, "dataset": run.dataset, "threat": run.threat.value,
            "eps": run.eps, "attack": run.attack, "protocol": run.protocol.value, "seed": run.seed,
            "n": run.n_examples, "beta": run.beta,
        }
        for variant, arm in (("base", run.base), ("ct", run.ct)):
            c = arm.counts
            for metric, k, n in (("clean_accuracy", c.clean_correct, c.n), ("robust_accuracy", c.robust_correct,
                                                                               c.n * c.cells)):
                low, high = wilson_interval(k, n)
                row[f"{variant}_{metric}"], row[f"{variant}_{metric}_low"], row[f"{variant}_{metric}_high"] = (
                    k / n if n else 0.0, low, high)
        gain = run.gain
        row.update({"gain_points": gain.gain_points, "gain_ci_low": gain.low, "gain_ci_high": gain.high,
                    "only_base": gain.only_base, "only_ct": gain.only_ct, "mcnemar_p": gain.p_value,
                    "significant": gain.significant, "flat_curve": run.flags.flat,
                    "beta_on_grid_edge": run.flags.edge, "base_candidate": run.base_candidate,
                    "clipped": run.ct.clipped, "command": run.command})
        rows.append(row)
    return rows


def paper_table(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The paper's layout: per model and threat, mean +- std over seeds, mean beta, relative improvement.

    Relative improvement is the paper's (CT - base) / base of the mean robust accuracies, in percent.
    """
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.setting_key, []).append(run)
    rows = []
    for members in groups.values():
        members = sorted(members, key=lambda r: r.seed)
        first = members[0]
        gain = pooled_gain([r.gain for r in members])
        base_m, base_s = mean_std([100 * r.base.robust_accuracy for r in members])
        ct_m, ct_s = mean_std([100 * r.ct.robust_accuracy for r in members])
        clean_b, _ = mean_std([100 * r.base.clean_accuracy for r in members])
        clean_c, _ = mean_std([100 * r.ct.clean_accuracy for r in members])
        beta_m, _ = mean_std([r.beta for r in members])
        rows.append({
            "model": first.model, "dataset": first.dataset, "threat": first.threat.value,
            "protocol": first.protocol.value, "attack": first.attack, "n_examples": first.n_examples,
            "seeds": ",".join(str(r.seed) for r in members),
            "base_robust_mean": round(base_m, 4), "base_robust_std": round(base_s, 4),
            "ct_robust_mean": round(ct_m, 4), "ct_robust_std": round(ct_s, 4),
            "relative_improvement_pct": _round(relative_improvement(base_m, ct_m)),
            "mean_beta": round(beta_m, 4),
            "base_clean_mean": round(clean_b, 4), "ct_clean_mean": round(clean_c, 4),
            "optimistic": first.optimistic,
            "gain_points_pooled": round(gain.gain_points, 4), "gain_ci_low": round(gain.low, 4),
            "gain_ci_high": round(gain.high, 4), "only_base": gain.only_base, "only_ct": gain.only_ct,
            "mcnemar_p": gain.p_value, "setting": first.setting_key[:12],
            "base_candidate": first.base_candidate,
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


def breakdown_rows(run: RunResult) -> list[dict[str, Any]]:
    """AutoAttack's robust accuracy after each of its attacks, for base and CT (empty for other attacks)."""
    base, ct = run.base.details.get("robust_accuracy_after"), run.ct.details.get("robust_accuracy_after")
    if not base or not ct:
        return []
    return [{"attack": name, "base": base[name], "ct": ct.get(name)} for name in base]


def corruption_delta(run: RunResult) -> dict[str, dict[str, float]]:
    """CT minus base accuracy per corruption and severity, on the evaluation split."""
    base, ct = run.base.details.get("cells") or {}, run.ct.details.get("cells") or {}
    return {c: {s: ct[c][s] - acc for s, acc in sev.items()} for c, sev in base.items()}


def selection_curve(run: RunResult) -> list[tuple[float, float]]:
    return sorted(run.select_curve.items())


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
