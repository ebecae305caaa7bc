"""``report``: one offline HTML page (Jinja2, autoescaped) plus tables (CSV, Markdown, LaTeX) and figures
(PDF and 300-dpi PNG).

Everything comes from the runs in the store. Strings from users (model names, paths, commands)
reach the page only through Jinja2's autoescape and never become file names unsanitised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ctrobust.outputs import safe_name
from ctrobust.report.audit_text import summary_lines
from ctrobust.report.figures import audit_figure, beta_figure, corruption_figure, gain_forest_figure
from ctrobust.report.tables import (
    breakdown_frame,
    corruption_delta,
    paper_table,
    paper_table_latex,
    paper_table_markdown,
    runs_frame,
    selection_frame,
    write_csv,
)

if TYPE_CHECKING:
    import pandas as pd

    from ctrobust.results.result import RunResult


def template_environment() -> Environment:
    env = Environment(loader=PackageLoader("ctrobust.report", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True))
    env.filters["pct"] = lambda v, digits=2: "" if v is None else f"{100 * float(v):.{digits}f}"
    env.filters["signed"] = lambda v: "n/a" if v is None else f"{float(v):+.2f}"
    return env


def run_slug(run: RunResult, index: int) -> str:
    return f"{index:03d}-" + safe_name(f"{run.label}_{run.dataset}_{run.threat.value}_{run.protocol.value}_s{run.seed}")


def write_report(runs: Sequence[RunResult], out: Path, store_path: str,
                 audits: Mapping[str, Sequence[dict[str, Any]]] | None = None) -> Path:
    """Write index.html, the tables (CSV, Markdown, LaTeX) and the figures (PDF and PNG) under ``out``;
    ``audits``: the stored attack audits per run id (``ctrobust audit-attack``), drawn under their run."""
    out.mkdir(parents=True, exist_ok=True)
    summary = runs_frame(runs)
    table = paper_table(runs)
    write_csv(summary, out / "summary.csv")
    write_csv(table, out / "paper_table.csv")
    (out / "paper_table.md").write_text(paper_table_markdown(table))
    (out / "paper_table.tex").write_text(paper_table_latex(table))
    figures_dir = out / "figures"
    sections = []
    rows = _records(summary)
    for index, (run, row) in enumerate(zip(runs, rows, strict=True), 1):
        slug = run_slug(run, index)
        figures = [_figure(beta_figure(run, figures_dir / f"{slug}-beta"), out,
                           f"robust accuracy against \u03b2 on the selection split, run {index}")]
        write_csv(selection_frame(run), out / "csv" / f"{slug}-beta.csv")
        breakdown = breakdown_frame(run)
        if not breakdown.empty:
            write_csv(breakdown, out / "csv" / f"{slug}-autoattack.csv")
        grid = corruption_delta(run)
        if not run.threat.is_norm_bounded and not grid.empty:
            figures.append(_figure(corruption_figure(run, figures_dir / f"{slug}-corruptions"), out,
                                   f"corruption grid, CT minus base, run {index}"))
            write_csv(grid.rename(columns=lambda s: f"severity_{s}").rename_axis("corruption").reset_index(),
                      out / "csv" / f"{slug}-corruptions.csv")
        run_audits = list((audits or {}).get(run.run_id, []))
        for k, audit in enumerate(run_audits):
            figures.append(_figure(audit_figure(audit, figures_dir / f"{slug}-audit{k}"), out,
                                   f"attack audit, run {index}: binarization along the grid and selection fidelity"))
        sanity = run.sanity.lines() if run.sanity is not None else []
        sanity += [line for audit in run_audits for line in summary_lines(audit)]
        sections.append({"index": index, "anchor": slug, "run": run, "row": row, "figures": figures, "sanity": sanity,
                         "breakdown": breakdown.to_dict("records"),
                         "grid": [{"corruption": c, **{f"severity_{s}": v for s, v in r.items()}}
                                  for c, r in grid.to_dict("index").items()],
                         "grid_severities": [f"severity_{s}" for s in grid.columns]})
    overview = []
    if runs:
        overview.append(_figure(gain_forest_figure(runs, figures_dir / "gains"), out,
                                "gain of CT over base per run, with its paired 95% interval"))
    html = template_environment().get_template("report.html.j2").render(
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        store_name=Path(store_path).name, summary=rows, table=_records(table),
        sections=sections, overview=overview,
    )
    page = out / "index.html"
    page.write_text(html, encoding="utf-8")
    return page


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts with missing values as None (pandas' NaN would print as "nan" and count as true)."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _figure(paths: tuple[Path, Path], out: Path, alt: str) -> dict[str, str]:
    """A figure's PNG (shown) and PDF (linked, vector), relative to the page."""
    png, pdf = paths
    return {"src": png.relative_to(out).as_posix(), "pdf": pdf.relative_to(out).as_posix(), "alt": alt}
