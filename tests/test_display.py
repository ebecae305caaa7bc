"""A result shows itself: str() is the terminal's summary, a notebook gets the same as HTML, plot() returns
the accuracy-against-beta Figure, forest_plot draws several runs, and load_results keeps its types."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import ctrobust
from ctrobust.cell import Counts
from ctrobust.report.run_output import summary_table
from ctrobust.results.result import ArmResult, RunResult
from ctrobust.results.store import open_store
from ctrobust.results.uncertainty import run_gain, selection_flags
from ctrobust.threats import ThreatModel
from test_result_fields import _full_result


def test_str_is_the_terminal_summary_with_intervals_gain_and_checks() -> None:
    result = _full_result()
    text = str(result)
    assert text == summary_table(result)
    assert "base (ReLU)" in text and "CT (beta 0.90)" in text
    assert "25.00% [" in text  # base robust: 1 of 4, with its Wilson interval
    assert "McNemar p" in text and "chosen beta   0.90" in text
    assert "WARNING       w" in text  # the sanity report's warning


def test_a_notebook_shows_the_same_summary_as_html() -> None:
    result = replace(_full_result(), model="<b>mine</b>")
    html = result._repr_html_()
    assert html.startswith("<div") and html.count("<table>") == 2
    assert "&lt;b&gt;mine&lt;/b&gt;" in html and "<b>mine</b>" not in html  # escaped
    for needle in ("95% interval", "McNemar p", "chosen beta", "WARNING: w"):
        assert needle in html


def test_plot_returns_the_accuracy_against_beta_figure(tmp_path: Path) -> None:
    result = _full_result()
    fig = result.plot()
    assert isinstance(fig, Figure)
    top, bottom = fig.axes[:2]
    assert [round(x, 2) for x in top.lines[0].get_xdata()] == [0.8, 0.9, 1.0]  # the selection curve
    assert any(line.get_xdata()[0] == 0.9 and line.get_linestyle() == "--" for line in top.lines)  # chosen beta
    fig.savefig(tmp_path / "beta.png")
    assert (tmp_path / "beta.png").stat().st_size > 1000


def test_forest_plot_draws_one_row_per_run_from_a_frame_or_runs(tmp_path: Path) -> None:
    a = _full_result()
    b = replace(a, run_id="abcdefabcdef", seed=4, identity={**a.identity, "seed": 4})
    store = tmp_path / "s.sqlite"
    with open_store(store) as st:
        for run in (a, b):
            st.put_run(run)
    frame = ctrobust.load_results(store)
    for fig in (ctrobust.forest_plot(frame), ctrobust.forest_plot([a, b])):
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert len(labels) == 2 and "seed 4" in labels[1]


def test_load_results_keeps_numbers_as_numbers(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    with open_store(store) as st:
        st.put_run(_full_result())
    runs = ctrobust.load_results(store)
    assert runs["gain_points"].dtype == float and runs["seed"].dtype == "int64"
    cells = ctrobust.load_results(store, kind="cells")
    assert str(cells["robust_correct"].dtype) == "Int64" and cells["robust_accuracy"].dtype == float
    assert json.dumps(int(cells["robust_correct"].dropna().iloc[0]))
    with pytest.raises(ctrobust.CtrobustError, match="kind"):
        ctrobust.load_results(store, kind="rows")


def _corruption_result() -> RunResult:
    base = {"clean": [1, 1, 1, 0], "fog/1": [1, 0, 1, 0], "snow/1": [1, 1, 0, 0]}
    ct = {"clean": [1, 1, 1, 1], "fog/1": [1, 1, 1, 0], "snow/1": [1, 1, 0, 0]}
    full = _full_result()
    return replace(full, threat=ThreatModel.CORRUPTIONS, eps=None, attack="corruptions", select_attack="corruptions",
                   beta=0.85, select_curve={0.8: 0.5, 0.85: 0.75, 0.9: 0.5, 1.0: 0.25},
                   select_clean={0.8: 1.0, 0.85: 1.0, 0.9: 1.0, 1.0: 1.0},
                   flags=selection_flags({0.8: 0.5, 0.85: 0.75, 0.9: 0.5, 1.0: 0.25}, 0.85, [0.8, 0.85, 0.9, 1.0], 4),
                   base=ArmResult(1.0, Counts.of(base)), ct=ArmResult(0.85, Counts.of(ct)),
                   gain=run_gain(ThreatModel.CORRUPTIONS, base, ct), per_example={"base": base, "ct": ct},
                   settings={"corruptions": ["fog", "snow"], "severities": [1]}, sanity=None,
                   identity={**full.identity, "threat": "corruptions", "checkpoint": "/models/smallcnn_seed1.pt"})


def test_the_report_shows_no_nan_no_phantom_edge_and_no_machine_path(tmp_path: Path) -> None:
    from ctrobust.report.html import write_report

    run = _corruption_result()
    assert run.flags.edge is None  # 0.85 is on no edge of the grid
    page = write_report([run, _full_result()], tmp_path / "report", store_path="/home/someone/work/s.sqlite")
    html = page.read_text()
    assert not re.search(r"\bnan\b", html)  # no "corruptions nan", no "n/a" printed as nan
    assert "on the grid's" not in html  # 0.85 is on no edge: no note saying it is
    assert "/home/someone" not in html and "<code>s.sqlite</code>" in html
    assert "smallcnn (smallcnn_seed1)" in html  # a checkpoint makes another model


def test_the_corruption_board_names_its_accuracy_and_commands_stay_readable(tmp_path: Path) -> None:
    from ctrobust.report.leaderboard import entries_from_runs, write_leaderboard_pages

    runs = [_corruption_result(), replace(_corruption_result(), identity={**_corruption_result().identity,
                                                                           "checkpoint": None}, run_id="111111111111")]
    entries = entries_from_runs(runs)
    assert sorted(e["name"] for e in entries) == ["smallcnn", "smallcnn (smallcnn_seed1)"]
    md, html = write_leaderboard_pages(entries, tmp_path)
    page = html.read_text()
    assert "base corruption acc %" in page and "CT corruption acc %" in page and "robust %" not in page
    assert "Base corruption acc (%)" in md.read_text()
    # Each entry is a tbody: its numbers, then a row as wide as the table with the command (no narrow column).
    assert page.count('<tr class="command-row"><td class="text command" colspan="15">') == 2
    header = re.search(r"<thead>(.*?)</thead>", page, re.S)
    assert header and header.group(1).count("<th") == 15 and "command" not in header.group(1)
    assert page.count("<tbody>") == 2 and "table.tBodies" in page  # sorting moves whole entries


def test_the_markdown_board_says_when_an_attack_was_weak(tmp_path: Path) -> None:
    """The README board has no badges: its evidence column and the warnings under it must carry the same word,
    for every warning the checks raise (a transfer that fooled CT once slipped past a list of prefixes)."""
    from ctrobust.report.leaderboard import entries_from_runs, write_leaderboard_pages
    from ctrobust.results.evidence import ArmBinarization, Binarization, ReAttack, SanityReport, Transfer, judge

    report = SanityReport(transfer=Transfer(fooled_ct=3, transfer_only=1), incomplete=ReAttack(m=41, broken=5),
                          binarization=Binarization({"ct": ArmBinarization("CT", "apgd-ce", "PASS"),
                                                     "base": ArmBinarization("base", "apgd-ce", "FAIL", 20, 1)}))
    judge(report, gain_points=1.0, final_attack="apgd-ce")
    assert any(w.startswith("transfer from the base model fooled CT") for w in report.warnings)
    full = _full_result()
    warned = replace(full, sanity=report)
    other = replace(full, run_id="111111111111", model="other", identity={**full.identity, "model": "other"},
                    sanity=SanityReport(binarization=Binarization({"ct": ArmBinarization("CT", "apgd-ce", "PASS"),
                                                                   "base": ArmBinarization("base", "apgd-ce", "PASS")})))
    md, _ = write_leaderboard_pages(entries_from_runs([warned, other]), tmp_path)
    text = md.read_text()
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith(("| 1 ", "| 2 "))}
    n = len(report.warnings)
    assert n >= 3 and f"CT test PASS, base test FAIL, **{n} attack warnings**" in rows["smallcnn"]
    assert rows["other"].rstrip(" |").endswith("CT test PASS, base test PASS")
    rank = 1 if rows["smallcnn"].startswith("| 1 ") else 2
    for warning in report.warnings:
        assert f"- rank {rank}, smallcnn: {warning}" in text
