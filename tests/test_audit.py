"""The CT audit of the RobustBench zoo: one architecture live, and the committed CSV as a whole."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_cli
from ctrobust.models.ct_audit import AUDIT_CSV, AuditRow, audit_one, read_audit, run_audit, zoo_entries


def test_audit_one_relu_and_non_relu_architectures() -> None:
    std = audit_one("cifar10", "Linf", "Standard", max_params_m=100)
    assert std.status == "ok" and std.relu_module_calls == 25 and std.relu_functional_calls == 0
    assert std.max_abs_diff_beta1 == 0.0 and std.beta09_changes_output is True
    preact = audit_one("cifar10", "Linf", "Andriushchenko2020Understanding", max_params_m=100)
    assert preact.status == "ok" and preact.relu_functional_calls > 0  # F.relu in forward, docs/protocol.md fault 3
    swish = audit_one("cifar10", "Linf", "Wang2023Better_WRN-28-10", max_params_m=100)
    assert swish.status == "not applicable" and "silu" in swish.other_activations.lower()
    big = audit_one("cifar10", "Linf", "Standard", max_params_m=1)
    assert big.status == "skipped"


def test_audit_resumes_without_redoing_rows(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Stored rows are kept and not recomputed; one network listed under several threats is built once."""
    import ctrobust.models.ct_audit as audit

    built: list[tuple[str, str]] = []

    def fake_audit_one(dataset: str, threat: str, name: str, max_params_m: float, seed: int = 0,
                       impl: str = "fused") -> AuditRow:
        built.append((dataset, name))
        return AuditRow(dataset, threat, name, status="skipped", note="stub")

    monkeypatch.setattr(audit, "audit_one", fake_audit_one)
    out = tmp_path / "audit.csv"
    first = run_audit(out, max_params_m=1, datasets=["cifar100"])
    entries = list(zoo_entries(["cifar100"]))
    assert len(first) == len(entries) and len(built) == len({(d, n) for d, _, n in entries})
    lines = out.read_text().count("\n")
    again = run_audit(out, max_params_m=1, datasets=["cifar100"])
    assert len(again) == len(first) and out.read_text().count("\n") == lines
    assert len(built) == len({(d, n) for d, _, n in entries})  # nothing recomputed


def test_committed_audit_covers_the_zoo() -> None:
    rows = read_audit(AUDIT_CSV)
    assert {(r.dataset, r.threat, r.model) for r in rows} == set(zoo_entries())
    for r in rows:
        assert r.status in ("ok", "not applicable", "skipped", "error"), (r.model, r.status, r.note)
        if r.status == "ok":
            assert r.max_abs_diff_beta1 == 0.0 and r.beta09_changes_output, r.model
            assert r.relu_module_calls + r.relu_functional_calls > 0
        if r.status == "not applicable":
            assert r.relu_module_calls + r.relu_functional_calls == 0 and r.other_activations, r.model


def test_audit_markdown_summary() -> None:
    proc = run_cli("audit-ct", "--markdown")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\| cifar10 +\| +\d+ \|", proc.stdout, re.M), proc.stdout  # a Markdown row per dataset
    assert "beta = 1 output equal to the original" in proc.stdout
