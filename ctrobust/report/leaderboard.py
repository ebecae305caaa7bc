"""Leaderboard entries in the spirit of RobustBench's model_info JSON, and the ranked page built from them.

Entries are written from the store; the page is built from every entry file under the
leaderboard directory, so entries made on several machines add up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctrobust.errors import CtrobustError
from ctrobust.outputs import safe_name
from ctrobust.report.html import template_environment
from ctrobust.report.tables import gain_of
from ctrobust.stats import mean_std, pooled_gain, relative_improvement

ENTRY_VERSION = 1


def _preference(run: dict[str, Any]) -> tuple[int, int, int]:
    """Which runs speak for a model: held-out protocol first, then AutoAttack, then the largest n."""
    return (run["protocol"] == "heldout", str(run["attack"]).startswith("autoattack"), int(run["n_examples"]))


def entries_from_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (dataset, threat, model): the preferred runs, averaged over their seeds."""
    by_model: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        by_model.setdefault((run["dataset"], run["threat"], run["model"]), []).append(run)
    entries = []
    for (dataset, threat, model), group in sorted(by_model.items()):
        best = max(_preference(r) for r in group)
        chosen = sorted((r for r in group if _preference(r) == best and r["attack"] == _first_attack(group, best)),
                        key=lambda r: r["seed"])
        entries.append(_entry(dataset, threat, model, chosen))
    return entries


def _first_attack(group: Sequence[dict[str, Any]], best: tuple[int, int, int]) -> str:
    return sorted(r["attack"] for r in group if _preference(r) == best)[0]


def _pct(runs: Sequence[dict[str, Any]], variant: str, metric: str) -> float:
    return round(mean_std([100 * float(r[variant][metric]) for r in runs])[0], 2)


def _gain_interval(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The gain's paired 95% interval and McNemar test over the entry's runs (their tables added up)."""
    gain = pooled_gain([gain_of(r) for r in runs])
    return {"gain_ci": [round(gain.low, 2), round(gain.high, 2)], "gain_only_base": gain.only_base,
            "gain_only_ct": gain.only_ct, "gain_mcnemar_p": gain.p_value}


def _entry(dataset: str, threat: str, model: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    first = runs[0]
    base_robust, ct_robust = _pct(runs, "base", "robust_accuracy"), _pct(runs, "ct", "robust_accuracy")
    entry: dict[str, Any] = {
        "name": model,
        "dataset": dataset,
        "threat_model": threat,
        "eps": first.get("eps"),
        "clean_acc": _pct(runs, "base", "clean_accuracy"),
        "robust_acc": base_robust,
        "attack": first["attack"],
        "ct_beta": round(mean_std([float(r["beta"]) for r in runs])[0], 4),
        "ct_clean_acc": _pct(runs, "ct", "clean_accuracy"),
        "ct_robust_acc": ct_robust,
        "gain": round(ct_robust - base_robust, 2),
        **_gain_interval(runs),
        "relative_improvement_pct": _round(relative_improvement(base_robust, ct_robust)),
        "protocol": first["protocol"],
        "optimistic": first["protocol"] == "paper",
        "n_examples": first["n_examples"],
        "n_select": first["n_select"],
        "seeds": [r["seed"] for r in runs],
        "commands": [r.get("command") for r in runs],
        "machine": sorted({r["provenance"]["device"] for r in runs}),
        "git_commit": sorted({str(r["provenance"].get("git_commit")) for r in runs}),
        "date": max(r["provenance"]["date"] for r in runs),
        "reported": False,
        "footnote": "Measured by ctrobust; accuracies in %, mean over seeds.",
        "entry_version": ENTRY_VERSION,
    }
    if threat == "corruptions":
        entry["corruptions_acc"] = entry["robust_acc"]
    elif first["attack"] == "autoattack-standard":
        entry["autoattack_acc"] = entry["robust_acc"]
    return entry


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


def read_entries(root: Path) -> list[dict[str, Any]]:
    """Every entry under ``root``; a file that is not an entry is named in a one-line error."""
    entries = []
    for path in sorted(root.glob("*/*/*.json")):
        try:
            entry = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise CtrobustError(f"{path} is not a leaderboard entry ({exc}); fix or remove it.") from None
        if not isinstance(entry, dict) or not {"dataset", "threat_model", "ct_robust_acc"} <= entry.keys():
            raise CtrobustError(f"{path} is not a leaderboard entry (fields missing); fix or remove it.")
        entries.append(entry)
    return entries


def ranked_boards(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Boards per (dataset, threat), each ranked by CT robust accuracy."""
    boards: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        boards.setdefault((entry["dataset"], entry["threat_model"]), []).append(entry)
    return [{"dataset": d, "threat": t, "entries": sorted(rows, key=lambda e: -e["ct_robust_acc"])}
            for (d, t), rows in sorted(boards.items())]


def leaderboard_markdown(boards: Sequence[dict[str, Any]]) -> str:
    lines = ["# ctrobust leaderboards", "",
             "Ranked by CT robust accuracy (mean corruption accuracy for corruptions). Generated by "
             "`ctrobust leaderboard` from the JSON entries in this folder; each entry records the commands that made it.",
             ""]
    for board in boards:
        lines += [f"## {board['dataset']} / {board['threat']}", "",
                  "| Rank | Model | Attack | Protocol | n | Seeds | Clean (%) | Robust (%) | beta | CT clean (%) | CT robust (%) | "
                  "Gain (pts) [95% CI] | McNemar p |",
                  "|---:|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for rank, e in enumerate(board["entries"], 1):
            protocol = e["protocol"] + (" (optimistic)" if e["optimistic"] else "")
            name = str(e["name"]).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            lines.append(f"| {rank} | {name} | {e['attack']} | {protocol} | {e['n_examples']} | "
                         f"{','.join(map(str, e['seeds']))} | {e['clean_acc']:.2f} | {e['robust_acc']:.2f} | "
                         f"{e['ct_beta']:.3f} | {e['ct_clean_acc']:.2f} | {e['ct_robust_acc']:.2f} | {e['gain']:+.2f} "
                         f"{_ci_text(e)} | {_p_text(e)} |")
        lines.append("")
    return "\n".join(lines)


def _ci_text(entry: dict[str, Any]) -> str:
    ci = entry.get("gain_ci")
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "[n/a]"


def _p_text(entry: dict[str, Any]) -> str:
    p = entry.get("gain_mcnemar_p")
    return "n/a" if p is None else f"{p:.3g}"


def write_leaderboard_pages(root: Path) -> tuple[Path, Path]:
    boards = ranked_boards(read_entries(root))
    md = root / "README.md"
    md.write_text(leaderboard_markdown(boards))
    html = root / "index.html"
    html.write_text(template_environment().get_template("leaderboard.html.j2").render(boards=boards), encoding="utf-8")
    return md, html
