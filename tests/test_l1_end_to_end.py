"""The L1 threat model end to end: eval on the shipped model, the result schema, a report and a leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, read_json, run_cli
from ctrobust.threats import ThreatModel, default_eps


@pytest.mark.slow
def test_l1_eval_report_and_leaderboard(tmp_path: Path) -> None:
    import jsonschema

    store, out = tmp_path / "s.sqlite", tmp_path / "run"
    proc = run_cli("eval", "--model", "smallcnn", "--threat", "l1", "--n-examples", "20", "--n-select", "20",
                   "--betas", "0.9", "--attack", "apgd-ce", "--steps", "5", "--select-steps", "5",
                   "--check-budget", "100", "--store", str(store), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    result = read_json(out / "result.json")
    assert result["threat"] == "L1" and result["eps"] == default_eps("fashion-mnist", ThreatModel.L1) == 6.0
    jsonschema.validate(result, json.loads((REPO / "docs" / "result.schema.json").read_text()))
    assert "threat        L1  eps=6" in proc.stdout
    # The sanity checks ran under L1 too: budget sweep and binarization on both arms.
    assert result["sanity_checks"]["budget"]["n"] > 0 and result["sanity_checks"]["binarization"]["arms"]

    report = run_cli("report", "--store", str(store), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report" / "index.html").read_text()
    assert "L1" in html
    board = run_cli("leaderboard", "--store", str(store), "--out", str(tmp_path / "boards"))
    assert board.returncode == 0, board.stderr
    assert (tmp_path / "boards" / "fashion-mnist" / "l1" / "smallcnn.json").is_file()
    assert "L1" in (tmp_path / "boards" / "README.md").read_text()


def test_pgd_under_l1_is_refused_before_work(tmp_path: Path) -> None:
    proc = run_cli("eval", "--model", "smallcnn", "--threat", "l1", "--attack", "pgd", "--store",
                   str(tmp_path / "s.sqlite"), "--no-progress")
    assert_one_line_error(proc, "PGD has no step under L1", "apgd-ce or autoattack")
    assert not (tmp_path / "s.sqlite").exists()


def test_l1_eps_beyond_any_image_is_refused(tmp_path: Path) -> None:
    proc = run_cli("eval", "--model", "smallcnn", "--threat", "l1", "--eps", "1e9", "--no-progress")
    assert_one_line_error(proc, "L1 eps", "beyond any image")

