"""Leaderboard entries in the spirit of RobustBench's model_info JSON, and the ranked page built from them.

Entries and pages are made from the runs in the results store (merge stores to pool several
machines' runs); the JSON entry files are an export, one per model, for other tools.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ctrobust.attacks.registry import is_benchmark_label
from ctrobust.outputs import safe_name
from ctrobust.plan.run_plan import Protocol
from ctrobust.report.html import template_environment
from ctrobust.report.tables import markdown_safe
from ctrobust.results.stats import pooled_gain, relative_improvement

if TYPE_CHECKING:
    from ctrobust.results.result import RunResult

ENTRY_VERSION = 1


def _preference(run: RunResult) -> tuple[int, int, int]:
    """Which runs speak for a model: held-out protocol first, then AutoAttack, then the largest n."""
    return (run.protocol is Protocol.HELDOUT, is_benchmark_label(run.attack), run.n_examples)


def entries_from_runs(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One entry per (dataset, threat, model): the preferred setting's runs, averaged over their seeds."""
    frame = pd.DataFrame({"dataset": [r.dataset for r in runs], "threat": [r.threat.value for r in runs],
                          "model": [r.label for r in runs], "run": range(len(runs))})
    entries = []
    for (dataset, threat, model), rows in frame.groupby(["dataset", "threat", "model"], sort=True):
        group = [runs[i] for i in rows["run"]]
        best = max(group, key=lambda r: (_preference(r), r.setting_key))
        chosen = sorted((r for r in group if r.setting_key == best.setting_key), key=lambda r: r.seed)
        entries.append(_entry(str(dataset), str(threat), str(model), chosen))
    return entries


def _entry(dataset: str, threat: str, model: str, runs: Sequence[RunResult]) -> dict[str, Any]:
    first = runs[0]
    frame = pd.DataFrame({"base_clean": [100 * r.base.clean_accuracy for r in runs],
                          "base_robust": [100 * r.base.robust_accuracy for r in runs],
                          "ct_clean": [100 * r.ct.clean_accuracy for r in runs],
                          "ct_robust": [100 * r.ct.robust_accuracy for r in runs],
                          "beta": [r.beta for r in runs]}).mean().round(4)
    base_robust, ct_robust = round(float(frame["base_robust"]), 2), round(float(frame["ct_robust"]), 2)
    gain = pooled_gain([r.gain for r in runs])
    source = str(first.model_source.get("source", ""))
    entry: dict[str, Any] = {
        "name": model,
        "dataset": dataset,
        "threat_model": threat,
        "eps": first.eps,
        "architecture": first.model_source.get("architecture"),
        "model_source": source,
        "link": _link(source, dataset, threat),
        "clean_acc": round(float(frame["base_clean"]), 2),
        "robust_acc": base_robust,
        "attack": first.attack,
        "ct_beta": round(float(frame["beta"]), 4),
        "ct_clean_acc": round(float(frame["ct_clean"]), 2),
        "ct_robust_acc": ct_robust,
        "gain": round(gain.gain_points, 2),
        "gain_ci": [round(gain.low, 2), round(gain.high, 2)],
        "gain_only_base": gain.only_base,
        "gain_only_ct": gain.only_ct,
        "gain_mcnemar_p": gain.p_value,
        "relative_improvement_pct": _round(relative_improvement(base_robust, ct_robust)),
        "protocol": first.protocol.value,
        "optimistic": first.optimistic,
        "base_candidate": first.base_candidate,
        "n_examples": first.n_examples,
        "n_select": first.n_select,
        "seeds": [r.seed for r in runs],
        "run_ids": [r.run_id for r in runs],
        "commands": [r.command for r in runs],
        "machine": sorted({str(r.provenance.get("device")) for r in runs}),
        "git_commit": sorted({str(r.provenance.get("git_commit")) for r in runs}),
        "date": max(str(r.provenance.get("date")) for r in runs),
        "binarization": _worst_verdicts(runs),
        # Every warning the sanity checks raise puts the attack in doubt (ctrobust.results.evidence.judge): all are shown.
        "attack_warnings": sorted({w for r in runs if r.sanity is not None for w in r.sanity.warnings}),
        "reported": False,
        "footnote": "Measured by ctrobust; accuracies in %, mean over seeds; gain pooled over the seeds' paired tables.",
        "entry_version": ENTRY_VERSION,
    }
    if not first.threat.is_norm_bounded:
        entry["corruptions_acc"] = entry["robust_acc"]
    elif first.attack == "autoattack-standard":
        entry["autoattack_acc"] = entry["robust_acc"]
    return entry


VERDICT_ORDER = ("FAIL", "INCONCLUSIVE", "NOT RUN", "PASS")


def _worst_verdicts(runs: Sequence[RunResult]) -> dict[str, str]:
    """Per arm, the binarization test's worst verdict over the seeds (absent where no run recorded one)."""
    out = {}
    for arm in ("base", "ct"):
        verdicts = [r.binarization[arm] for r in runs if r.binarization.get(arm)]
        if verdicts:
            out[arm] = min(verdicts, key=lambda v: VERDICT_ORDER.index(v) if v in VERDICT_ORDER else 0)
    return out


def _link(source: str, dataset: str, threat: str) -> str | None:
    """Where the model is described: RobustBench's leaderboard for zoo models, the CT paper for its ResNets."""
    if source == "robustbench":
        return f"https://robustbench.github.io/#{dataset}-{threat}".lower()
    if source == "paper":
        return "https://arxiv.org/abs/2502.07783"
    return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def write_entries(entries: Sequence[dict[str, Any]], root: Path) -> list[Path]:
    paths = []
    for entry in entries:
        path = root / safe_name(entry["dataset"]) / safe_name(entry["threat_model"]) / f"{safe_name(entry['name'])}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry, indent=2) + "\n")
        paths.append(path)
    return paths


def ranked_boards(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Boards per (dataset, threat), each ranked by CT robust accuracy."""
    if not entries:
        return []
    frame = pd.DataFrame({"dataset": [e["dataset"] for e in entries], "threat": [e["threat_model"] for e in entries],
                          "score": [-e["ct_robust_acc"] for e in entries], "entry": range(len(entries))})
    return [{"dataset": d, "threat": t, "entries": [entries[i] for i in rows.sort_values("score", kind="stable")["entry"]]}
            for (d, t), rows in frame.groupby(["dataset", "threat"], sort=True)]


def metric_name(threat: str) -> str:
    """What a board's accuracy under attack is called: robust accuracy, or corruption accuracy."""
    return "corruption acc" if threat == "corruptions" else "robust"


def board_frame(entries: Sequence[dict[str, Any]], threat: str = "Linf") -> pd.DataFrame:
    """A board as a reader sees it: base and CT robust (or corruption) accuracy named as such, the gain with its
    interval."""
    base_metric, ct_metric = f"Base {metric_name(threat)} (%)", f"CT {metric_name(threat)} (%)"
    return pd.DataFrame({
        "Rank": range(1, len(entries) + 1),
        "Model": [markdown_safe(e["name"]) for e in entries],
        "Architecture": [markdown_safe(e.get("architecture") or "") for e in entries],
        "Source": [markdown_safe(e.get("model_source") or "") for e in entries],
        "Attack": [e["attack"] for e in entries],
        "Protocol": [e["protocol"] + (" (optimistic)" if e["optimistic"] else "") for e in entries],
        "n": [e["n_examples"] for e in entries],
        "Seeds": [",".join(map(str, e["seeds"])) for e in entries],
        "Base clean (%)": [f"{e['clean_acc']:.2f}" for e in entries],
        base_metric: [f"{e['robust_acc']:.2f}" for e in entries],
        "β": [f"{e['ct_beta']:.3f}" for e in entries],
        "CT clean (%)": [f"{e['ct_clean_acc']:.2f}" for e in entries],
        ct_metric: [f"{e['ct_robust_acc']:.2f}" for e in entries],
        "Gain (pts) [95% CI]": [f"{e['gain']:+.2f} [{e['gain_ci'][0]:+.2f}, {e['gain_ci'][1]:+.2f}]" for e in entries],
        "McNemar p": [f"{e['gain_mcnemar_p']:.3g}" for e in entries],
        "Attack evidence": [attack_evidence(e) for e in entries],
    })


def attack_evidence(entry: dict[str, Any]) -> str:
    """The binarization test's worst verdict per arm and the number of attack warnings, in a few words: a board
    without its page's badges must still not show a number as confident when its attack was not."""
    verdicts = entry.get("binarization") or {}
    parts = [f"{'CT' if arm == 'ct' else 'base'} test {verdicts[arm]}" for arm in ("ct", "base") if verdicts.get(arm)]
    warnings = len(entry.get("attack_warnings") or [])
    if warnings:
        parts.append(f"**{warnings} attack warning{'s' if warnings > 1 else ''}**")
    if not parts:
        return "no attack (corruptions)" if "corruptions_acc" in entry else "not recorded"
    return ", ".join(parts)


def _warning_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Each attack warning in full under its board, by rank and model."""
    lines = [f"- rank {rank}, {markdown_safe(e['name'])}: {markdown_safe(w)}"
             for rank, e in enumerate(entries, 1) for w in e.get("attack_warnings") or []]
    return ["Attack warnings:", "", *lines, ""] if lines else []


def leaderboard_markdown(boards: Sequence[dict[str, Any]]) -> str:
    lines = ["# ctrobust leaderboards", "",
             "Ranked by CT robust accuracy (mean corruption accuracy for corruptions). Generated by "
             "`ctrobust leaderboard` from the results store; each entry (a JSON file in this folder) records the "
             "commands that made it. Base robust: the original (ReLU) model's; CT robust: at the chosen β. Attack evidence: "
             "the binarization test's worst verdict per arm over the seeds, and how many attack warnings the runs "
             "raised (listed in full under the board).", ""]
    for board in boards:
        lines += [f"## {board['dataset']} / {board['threat']}", "",
                  board_frame(board["entries"], board["threat"]).to_markdown(index=False, disable_numparse=True), "",
                  *_warning_lines(board["entries"])]
    return "\n".join(lines)


def write_leaderboard_pages(entries: Sequence[dict[str, Any]], root: Path) -> tuple[Path, Path]:
    """README.md and index.html under ``root``, ranking the entries made from the store."""
    boards = ranked_boards(entries)
    md = root / "README.md"
    md.write_text(leaderboard_markdown(boards))
    html = root / "index.html"
    page = template_environment().get_template("leaderboard.html.j2").render(boards=boards, metric_name=metric_name)
    html.write_text(page, encoding="utf-8")
    return md, html
