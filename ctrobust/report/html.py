"""``report``: one offline HTML page (Jinja2, autoescaped) plus CSV files and PNG figures.

Everything comes from the runs in the store. Strings from users (model names, paths, commands)
reach the page only through Jinja2's autoescape and never become file names unsanitised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ctrobust.outputs import safe_name
from ctrobust.report.figures import beta_figure, corruption_figure
from ctrobust.result import RunResult
from ctrobust.report.tables import (
    breakdown_rows, corruption_delta, paper_table, selection_curve, summary_rows, write_csv,
)


def template_environment() -> Environment:
    env = Environment(loader=PackageLoader("ctrobust.report", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True))
    env.filters["pct"] = lambda v, digits=2: "" if v is None else f"{100 * float(v):.{digits}f}"
    env.filters["signed"] = lambda v: "n/a" if v is None else f"{float(v):+.2f}"
    return env


def run_slug(run: RunResult, index: int) -> str:
    return f"{index:03d}-" + safe_name(f"{run.model}_{run.dataset}_{run.threat.value}_{run.protocol.value}_s{run.seed}")


def write_report(runs: Sequence[RunResult], out: Path, store_path: str) -> Path:
    """Write index.html, CSV files and figures for ``runs`` under ``out``; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_rows(runs)
    table = paper_table(runs)
    write_csv(summary, out / "summary.csv")
    write_csv(table, out / "paper_table.csv")
    sections = []
    for index, (run, row) in enumerate(zip(runs, summary), 1):
        slug = run_slug(run, index)
        figures = [{"src": f"figures/{slug}-beta.png", "alt": f"accuracy against beta, run {index}"}]
        beta_figure(run, out / figures[0]["src"])
        write_csv([{"beta": b, "select_accuracy": a} for b, a in selection_curve(run)], out / "csv" / f"{slug}-beta.csv")
        breakdown = breakdown_rows(run)
        if breakdown:
            write_csv(breakdown, out / "csv" / f"{slug}-autoattack.csv")
        grid: list[dict[str, Any]] = []
        if not run.threat.is_norm_bounded:
            src = f"figures/{slug}-corruptions.png"
            corruption_figure(run, out / src)
            figures.append({"src": src, "alt": f"corruption grid CT minus base, run {index}"})
            grid = [{"corruption": c, **{f"severity_{s}": d for s, d in sev.items()}}
                    for c, sev in corruption_delta(run).items()]
            write_csv(grid, out / "csv" / f"{slug}-corruptions.csv")
        sanity = run.sanity.lines() if run.sanity is not None else []
        sections.append({"index": index, "anchor": slug, "run": run, "row": row, "figures": figures, "sanity": sanity,
                         "breakdown": breakdown, "grid": grid,
                         "grid_severities": sorted({s for r in grid for s in r if s != "corruption"})})
    html = template_environment().get_template("report.html.j2").render(
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        store_path=store_path, summary=summary, table=table, sections=sections,
    )
    page = out / "index.html"
    page.write_text(html, encoding="utf-8")
    return page
