"""Every CSV ctrobust writes is safe to open in a spreadsheet: a text cell that starts like a formula (a model
file named ``=cmd|' C calc'!A0.py``) is written with the usual ``'`` prefix; numbers stay numbers."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from ctrobust.outputs import spreadsheet_safe
from ctrobust.report.run_output import write_result
from ctrobust.report.tables import paper_table, runs_frame, write_csv
from test_result_fields import _full_result

EVIL = "=cmd|' C calc'!A0<script>alert(1)</script>.py:build"


@pytest.mark.parametrize("text", ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\t=x", "\r=x", EVIL])
def test_formula_text_is_prefixed(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("value", ["-0.5", "+1", "1e-3", "model", "", 3.0, -2, None])
def test_numbers_and_plain_text_stay(value: object) -> None:
    assert spreadsheet_safe(value) == value


def _cells(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def test_every_csv_writer_neutralises_a_formula_in_a_model_name(tmp_path: Path) -> None:
    run = replace(_full_result(), model=EVIL)
    _, result_csv = write_result(run, tmp_path / "run")
    runs_csv = write_csv(runs_frame([run]), tmp_path / "runs.csv")
    table_csv = write_csv(paper_table([run]), tmp_path / "paper_table.csv")
    for path in (result_csv, runs_csv, table_csv):
        cells = _cells(path)
        assert "'" + EVIL in cells, path.name
        assert EVIL not in cells, path.name
    with result_csv.open(newline="") as fh:  # numbers are written as numbers, never prefixed
        rows = list(csv.DictReader(fh))
    assert [float(row["robust_accuracy"]) for row in rows] == [run.base.robust_accuracy, run.ct.robust_accuracy]


def test_the_zoo_audit_csv_is_written_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctrobust.models import ct_audit

    monkeypatch.setattr(ct_audit, "zoo_entries", lambda datasets=None: iter([("cifar10", "Linf", EVIL)]))
    monkeypatch.setattr(ct_audit, "audit_one", lambda ds, th, name, max_params_m, seed=0, impl="fused":
                        ct_audit.AuditRow(ds, th, name, status="skipped", note="=HYPERLINK(x)"))
    out = tmp_path / "audit.csv"
    ct_audit.run_audit(out, max_params_m=1)
    cells = _cells(out)
    assert "'" + EVIL in cells and "'=HYPERLINK(x)" in cells
