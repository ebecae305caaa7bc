"""Tables computed from stored runs, as pandas DataFrames: runs, the paper's table, breakdowns, grids.

Every number here is derived from a run's typed result (its counts and per-example outcomes), so the
HTML, the CSV/Markdown/LaTeX files, the leaderboards and ``reproduce`` agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ctrobust.outputs import spreadsheet_safe
from ctrobust.results.stats import pooled_gain, relative_improvement, wilson_interval

if TYPE_CHECKING:
    from ctrobust.results.result import RunResult

PAPER_GROUP = ["model", "dataset", "threat", "protocol", "attack", "n_examples"]


def runs_frame(runs: Sequence[RunResult]) -> pd.DataFrame:
    """One row per run: accuracies (k of n) with 95% Wilson intervals, chosen beta, the paired gain."""
    rows = []
    for run in runs:
        row: dict[str, object] = {
            "run_id": run.run_id, "setting": run.setting_key[:12], "model": run.label, "dataset": run.dataset,
            "threat": run.threat.value, "eps": run.eps, "attack": run.attack, "protocol": run.protocol.value,
            "seed": run.seed, "n": run.n_examples, "beta": run.beta,
        }
        for variant, arm in (("base", run.base), ("ct", run.ct)):
            c = arm.counts
            for metric, k, n in (("clean_accuracy", c.clean_correct, c.n),
                                 ("robust_accuracy", c.robust_correct, c.n * c.cells)):
                low, high = wilson_interval(k, n)
                row.update({f"{variant}_{metric}": k / n if n else 0.0, f"{variant}_{metric}_low": low,
                            f"{variant}_{metric}_high": high})
        gain = run.gain
        row.update({"gain_points": gain.gain_points, "gain_ci_low": gain.low, "gain_ci_high": gain.high,
                    "only_base": gain.only_base, "only_ct": gain.only_ct, "mcnemar_p": gain.p_value,
                    "significant": gain.significant, "flat_curve": run.flags.flat,
                    "beta_on_grid_edge": run.flags.edge, "base_candidate": run.base_candidate,
                    "clipped": run.ct.clipped, "binarization_base": run.binarization.get("base", ""),
                    "binarization_ct": run.binarization.get("ct", ""), "command": run.command})
        rows.append(row)
    return pd.DataFrame(rows)


def paper_table(runs: Sequence[RunResult]) -> pd.DataFrame:
    """The paper's layout: per setting (runs that differ in the seed alone), mean and sample std over
    seeds, mean beta, relative improvement ((CT - base) / base of the mean robust accuracies, in %), and
    the gain pooled over the seeds' paired tables with its interval and McNemar test."""
    if not runs:
        return pd.DataFrame()
    frame = runs_frame(runs)
    for variant in ("base", "ct"):
        for metric, short in (("robust_accuracy", "robust"), ("clean_accuracy", "clean")):
            frame[f"{variant}_{short}"] = 100 * frame[f"{variant}_{metric}"]
    gains = {run.run_id: run.gain for run in runs}
    grouped = frame.sort_values("seed").groupby("setting", sort=False)
    table = grouped.agg(
        **{key: (key, "first") for key in PAPER_GROUP if key != "n_examples"}, n_examples=("n", "first"),
        seeds=("seed", lambda s: ",".join(map(str, s))),
        base_robust_mean=("base_robust", "mean"), base_robust_std=("base_robust", "std"),
        ct_robust_mean=("ct_robust", "mean"), ct_robust_std=("ct_robust", "std"),
        mean_beta=("beta", "mean"), base_clean_mean=("base_clean", "mean"), ct_clean_mean=("ct_clean", "mean"),
        base_candidate=("base_candidate", "first"), run_ids=("run_id", list),
    ).reset_index()
    for column in ("base_robust_std", "ct_robust_std"):  # one seed: no spread, not NaN
        table[column] = table[column].fillna(0.0)
    table["relative_improvement_pct"] = [
        relative_improvement(b, c) for b, c in zip(table["base_robust_mean"], table["ct_robust_mean"], strict=True)]
    pooled = [pooled_gain([gains[i] for i in ids]) for ids in table["run_ids"]]
    table["gain_points_pooled"] = [g.gain_points for g in pooled]
    table["gain_ci_low"] = [g.low for g in pooled]
    table["gain_ci_high"] = [g.high for g in pooled]
    table["only_base"] = [g.only_base for g in pooled]
    table["only_ct"] = [g.only_ct for g in pooled]
    table["mcnemar_p"] = [g.p_value for g in pooled]
    table["optimistic"] = table["protocol"] == "paper"
    table = table.drop(columns="run_ids").round({c: 4 for c in (
        "base_robust_mean", "base_robust_std", "ct_robust_mean", "ct_robust_std", "mean_beta", "base_clean_mean",
        "ct_clean_mean", "gain_points_pooled", "gain_ci_low", "gain_ci_high")})  # p-values keep their digits
    table["relative_improvement_pct"] = table["relative_improvement_pct"].astype(float).round(2)
    return table.sort_values(["dataset", "model", "threat", "attack", "protocol"]).reset_index(drop=True)


def paper_table_display(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's table as a reader sees it: mean ± std, the gain with its interval, the protocol labelled."""
    def signed(v: float) -> str:
        return f"{v:+.2f}"

    return pd.DataFrame({
        "Model": table["model"], "Dataset": table["dataset"], "Threat": table["threat"],
        "Protocol": [p + (" (optimistic)" if o else "") for p, o in zip(table["protocol"], table["optimistic"],
                                                                         strict=True)],
        "Attack": table["attack"], "n": table["n_examples"], "Seeds": table["seeds"],
        "Base (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(table["base_robust_mean"], table["base_robust_std"],
                                                          strict=True)],
        "CT (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(table["ct_robust_mean"], table["ct_robust_std"], strict=True)],
        "Gain (pts) [95% CI]": [f"{signed(g)} [{signed(lo)}, {signed(hi)}]" for g, lo, hi in zip(
            table["gain_points_pooled"], table["gain_ci_low"], table["gain_ci_high"], strict=True)],
        "McNemar p": [f"{p:.3g}" for p in table["mcnemar_p"]],
        "Rel. impr.": ["n/a" if pd.isna(r) else f"{r:+.2f}%" for r in table["relative_improvement_pct"]],
        "β": [f"{b:.3f}" for b in table["mean_beta"]],
    })


def paper_table_markdown(table: pd.DataFrame) -> str:
    shown = paper_table_display(table)
    for column in ("Model", "Attack"):  # Markdown-safe cells: no pipes, no raw HTML
        shown[column] = shown[column].map(markdown_safe)
    return shown.to_markdown(index=False, colalign=["left"] * 5 + ["right"] * 8, disable_numparse=True) + "\n"


def paper_table_latex(table: pd.DataFrame) -> str:
    """The paper's table for a LaTeX document (booktabs), text escaped."""
    shown = paper_table_display(table).rename(columns={"β": "$\\beta$"})
    shown.columns = [c.replace("%", "\\%") if c != "$\\beta$" else c for c in shown.columns]
    shown = shown.map(lambda v: str(v).replace("±", "$\\pm$") if isinstance(v, str) else v)
    escape = {"_": "\\_", "&": "\\&", "%": "\\%", "#": "\\#", "<": "\\textless{}", ">": "\\textgreater{}"}
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].map(lambda v: "".join(escape.get(ch, ch) for ch in str(v))
                                              if "$" not in str(v) else str(v))
    return shown.to_latex(index=False, column_format="l" * 5 + "r" * 8)


def markdown_safe(text: object) -> str:
    """One table cell: no pipe, no raw HTML, no line break (a newline in a model's name would end the row)."""
    flat = " ".join(str(text).splitlines())
    return flat.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def breakdown_frame(run: RunResult) -> pd.DataFrame:
    """AutoAttack's robust accuracy after each of its attacks, for base and CT (empty for other attacks)."""
    base, ct = run.base.details.get("robust_accuracy_after"), run.ct.details.get("robust_accuracy_after")
    if not base or not ct:
        return pd.DataFrame(columns=["attack", "base", "ct"])
    return pd.DataFrame({"attack": list(base), "base": list(base.values()), "ct": [ct.get(n) for n in base]})


def corruption_delta(run: RunResult) -> pd.DataFrame:
    """CT minus base accuracy per corruption (rows) and severity (columns), on the evaluation split."""
    base, ct = run.base.details.get("cells") or {}, run.ct.details.get("cells") or {}
    frame = pd.DataFrame({c: {s: ct[c][s] - acc for s, acc in sev.items()} for c, sev in base.items()}).T
    return frame[sorted(frame.columns, key=int)] if not frame.empty else frame


def selection_frame(run: RunResult) -> pd.DataFrame:
    """The selection curve: robust and clean accuracy per candidate beta, with the robust one's Wilson band."""
    betas = sorted(run.select_curve)
    n = run.n_select
    bands = [wilson_interval(round(run.select_curve[b] * n), n) for b in betas]
    return pd.DataFrame({"beta": betas, "select_accuracy": [run.select_curve[b] for b in betas],
                         "select_low": [lo for lo, _ in bands], "select_high": [hi for _, hi in bands],
                         "select_clean": [run.select_clean.get(b) for b in betas]})


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The one CSV writer of the reports: every text cell made safe for spreadsheets (``outputs.spreadsheet_safe``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.select_dtypes(include=["object", "string"]).columns
    safe = frame.copy()
    for column in text:
        safe[column] = safe[column].map(spreadsheet_safe)
    safe.to_csv(path, index=False)
    return path
