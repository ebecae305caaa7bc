"""Figures of a run as PNG files: accuracy against beta, and the corruption grid of CT minus base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from ctrobust.report.tables import corruption_delta, selection_curve  # noqa: E402
from ctrobust.result import RunResult  # noqa: E402


def beta_figure(run: RunResult, path: Path) -> Path:
    """Selection-split robust (and clean) accuracy against beta; chosen beta and eval-split results marked."""
    curve = selection_curve(run)
    clean = sorted(run.select_clean.items())
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    metric = "robust accuracy" if run.threat.is_norm_bounded else "mean corruption accuracy"
    ax.plot([b for b, _ in curve], [100 * a for _, a in curve], "o-", ms=3, color="tab:blue",
            label=f"selection split: {metric} ({run.select_attack})")
    if clean:
        ax.plot([b for b, _ in clean], [100 * a for _, a in clean], "-", color="tab:blue", alpha=0.35,
                label="selection split: clean accuracy")
    ax.axvline(run.beta, color="tab:red", ls="--", lw=1, label=f"chosen beta {run.beta:.2f}")
    ax.plot([1.0], [100 * run.base.robust_accuracy], "s", color="black", label="base (ReLU), evaluation split")
    ax.plot([run.beta], [100 * run.ct.robust_accuracy], "*", ms=12, color="tab:red",
            label="CT, evaluation split")
    ax.set_xlabel("beta")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{run.threat.value}: accuracy against beta (n_select={run.n_select}, n_eval={run.n_examples})",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def corruption_figure(run: RunResult, path: Path) -> Path:
    """Heat map of CT minus base accuracy (points) per corruption and severity."""
    delta = corruption_delta(run)
    names = list(delta)
    severities = sorted({s for row in delta.values() for s in row}, key=int)
    values = [[100 * delta[c].get(s, float("nan")) for s in severities] for c in names]
    bound = max([abs(v) for row in values for v in row if v == v] + [1.0])
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(severities), 0.9 + 0.38 * len(names)), dpi=110)
    image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(severities)), [f"sev {s}" for s in severities], fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="CT - base (points)")
    ax.set_title(f"CT (beta {run.beta:.2f}) minus base, evaluation split", fontsize=9)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
