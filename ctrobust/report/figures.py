"""Figures of runs: accuracy against beta, the corruption grid of CT minus base, and a forest plot of the
gains across runs. Each ``*_plot`` returns a matplotlib ``Figure`` (a notebook shows it; ``RunResult.plot()``
and ``ctrobust.forest_plot`` are these); each ``*_figure`` writes one as a vector PDF and a 300-dpi PNG.

Figures are built with matplotlib's object API, not pyplot: nothing here picks a backend, so the same code
writes files on a server and draws inline in a notebook, and no figure lingers in pyplot's registry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from ctrobust.report.tables import corruption_delta, runs_frame, selection_frame
from ctrobust.results.stats import wilson_interval

if TYPE_CHECKING:
    import pandas as pd

    from ctrobust.results.result import RunResult

PNG_DPI = 300


def shown_inline(fig: Figure) -> Figure:
    """``fig``, and in a running IPython kernel its figures registered for PNG display (what ``%matplotlib
    inline`` does), so a returned Figure draws in the notebook. Outside IPython nothing is imported."""
    if "IPython" in sys.modules:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats

        shell = get_ipython()
        if shell is not None and hasattr(shell, "display_formatter"):
            select_figure_formats(shell, {"png"}, bbox_inches="tight")
    return fig
BETA = "\u03b2"


def beta_figure(run: RunResult, stem: Path) -> tuple[Path, Path]:
    return _save(beta_plot(run), stem)


def beta_plot(run: RunResult) -> Figure:
    """Robust accuracy against beta (top) and clean accuracy (bottom): the selection curve with its 95%
    band, base and CT on the evaluation split with their 95% intervals, the chosen beta marked."""
    curve = selection_frame(run)
    paper = run.optimistic
    curve_split = "evaluation split (paper protocol: \u03b2 chosen on it)" if paper else "selection split"
    metric = "robust accuracy" if run.threat.is_norm_bounded else "mean corruption accuracy"
    fig = Figure(figsize=(7.2, 4.8))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    betas = curve["beta"].tolist()
    top.fill_between(betas, 100 * curve["select_low"], 100 * curve["select_high"], color="tab:blue", alpha=0.18,
                     lw=0, label="95% interval (Wilson)")
    top.plot(betas, 100 * curve["select_accuracy"], "o-", ms=3, color="tab:blue",
             label=f"{curve_split}, {run.select_attack} (n={run.n_select})")
    for arm, label, marker, colour in ((run.base, "base (ReLU)", "s", "black"), (run.ct, "CT", "D", "tab:red")):
        c = arm.counts
        low, high = wilson_interval(c.robust_correct, c.n * c.cells)
        acc = 100 * arm.robust_accuracy
        top.errorbar([arm.beta], [acc], yerr=[[acc - 100 * low], [100 * high - acc]], fmt=marker, ms=6, color=colour,
                     mfc="white" if arm is run.base else colour, capsize=3,
                     label=f"{label}, evaluation split, {run.attack} (n={c.n})")
    top.axvline(run.beta, color="tab:red", ls="--", lw=1, label=f"chosen {BETA} = {run.beta:.2f}")
    top.set_ylabel(f"{metric} (%)")
    top.grid(alpha=0.3)
    top.set_title(f"{run.label} · {run.dataset} · {run.threat.value}" + (f" \u03b5={run.eps:.4g}" if run.eps else "")
                  + f" · seed {run.seed} · {run.protocol.value}", fontsize=9)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    clean = curve.dropna(subset=["select_clean"])
    bottom.plot(clean["beta"], 100 * clean["select_clean"], "-", color="tab:blue", alpha=0.7,
                label=f"{curve_split}")
    bottom.plot([run.base.beta], [100 * run.base.clean_accuracy], "s", color="black", mfc="white",
                label="base, evaluation split")
    bottom.plot([run.ct.beta], [100 * run.ct.clean_accuracy], "D", color="tab:red", label="CT, evaluation split")
    bottom.axvline(run.beta, color="tab:red", ls="--", lw=1)
    bottom.set_ylabel("clean (%)")
    bottom.set_xlabel(BETA)
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def corruption_figure(run: RunResult, stem: Path) -> tuple[Path, Path]:
    """Heat map of CT minus base accuracy (points) per corruption and severity; text light on dark cells."""
    delta = 100 * corruption_delta(run)
    values = delta.to_numpy(dtype=float)
    finite = [abs(v) for v in values.flatten() if v == v]
    bound = max(finite + [1.0])
    fig = Figure(figsize=(1.6 + 0.9 * delta.shape[1], 1.0 + 0.38 * delta.shape[0]))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(delta.shape[1]), [f"severity {s}" for s in delta.columns], fontsize=8)
    ax.set_yticks(range(delta.shape[0]), list(delta.index), fontsize=8)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.55 * bound else "black")
    fig.colorbar(image, ax=ax, label="CT \u2212 base (points)")
    ax.set_title(f"CT ({BETA} = {run.beta:.2f}) minus base, evaluation split (n={run.n_examples})", fontsize=9)
    return _save(fig, stem)


def gain_forest_figure(runs: Sequence[RunResult], stem: Path) -> tuple[Path, Path]:
    return _save(forest_plot(runs_frame(runs)), stem)


def forest_plot(frame: pd.DataFrame | Sequence[RunResult]) -> Figure:
    """One row per run: the gain of CT over base in points with its paired 95% interval (a forest plot).

    ``frame``: ``ctrobust.load_results(store)`` (or any frame with its columns), or RunResults."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = runs_frame(list(frame))
    fig = Figure(figsize=(7.2, 0.9 + 0.32 * max(len(frame), 1)))
    ax = fig.subplots()
    labels = []
    for row, run in enumerate(frame.itertuples(index=False)):
        gain, low, high = float(run.gain_points), float(run.gain_ci_low), float(run.gain_ci_high)
        colour = "tab:red" if float(run.mcnemar_p) < 0.05 else "tab:gray"
        ax.errorbar([gain], [row], xerr=[[gain - low], [high - gain]], fmt="o", color=colour, capsize=3, ms=4)
        labels.append(f"{run.model} · {run.threat} · {run.attack} · {run.protocol} · seed {run.seed}"
                      f" ({BETA}={float(run.beta):.2f})")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("gain of CT over base (points), paired 95% interval; red: McNemar p < 0.05")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return shown_inline(fig)


def audit_figure(audit: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    """An attack audit (``ctrobust audit-attack``): the selection attack's binarized success rate along the beta
    grid (left), and its robust accuracy against AutoAttack's on the same points (right)."""
    fig = Figure(figsize=(9.0, 3.4))
    left, right = fig.subplots(1, 2)
    grid = audit.get("grid") or {}
    if grid:
        betas = [float(b) for b in grid]
        rates = [100 * v["found"] / v["m"] if v["m"] else float("nan") for v in grid.values()]
        lows = [100 * wilson_interval(v["found"], v["m"])[0] if v["m"] else float("nan") for v in grid.values()]
        left.fill_between(betas, lows, rates, color="tab:blue", alpha=0.15, lw=0, label="95% lower bound (Wilson)")
        left.plot(betas, rates, "o-", ms=3, color="tab:blue", label="selection attack, binarized")
        left.axhline(95, color="grey", ls=":", lw=1, label="PASS threshold")
    left.axvline(audit["beta"], color="tab:red", ls="--", lw=1, label=f"chosen {BETA} = {audit['beta']:.2f}")
    left.set_xlabel(BETA)
    left.set_ylabel("adversarial examples found (%)")
    left.set_title(f"binarization test along the grid ({audit['samples']} samples)", fontsize=9)
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    fidelity = audit.get("fidelity")
    if fidelity:
        for name, colour in (("selection", "tab:blue"), ("autoattack", "black")):
            curve = fidelity["curves"][name]
            right.plot([float(b) for b in curve], [100 * v for v in curve.values()], "o-", ms=3, color=colour,
                       label="selection attack" if name == "selection" else "AutoAttack")
        rho = fidelity.get("spearman")
        right.set_title(f"selection fidelity (n={fidelity['n']}, Spearman "
                        + ("n/a" if rho is None else f"{rho:.2f}") + ")", fontsize=9)
        right.axvline(audit["beta"], color="tab:red", ls="--", lw=1)
        right.legend(fontsize=7)
    else:
        right.set_title("selection fidelity not measured", fontsize=9)
    right.set_xlabel(BETA)
    right.set_ylabel("robust accuracy (%)")
    right.grid(alpha=0.3)
    return _save(fig, stem)


def _save(fig: Figure, stem: Path) -> tuple[Path, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    fig.savefig(png, format="png", dpi=PNG_DPI, bbox_inches="tight")
    fig.savefig(pdf, format="pdf", bbox_inches="tight")
    return png, pdf
