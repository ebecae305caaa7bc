"""``reproduce``: grid configs, the paper's table, and resuming after kill -9 with nothing computed twice."""

from __future__ import annotations

import csv
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, run_cli
from conftest import TINY_GRID as TINY
from conftest import TINY_GRID_UNITS as UNITS
from ctrobust.plan.reproduce import load_config

SUMMARY = re.compile(r"(\d+) runs made, (\d+) already stored; cells: (\d+) computed, (\d+) reused")


def _summary(stdout: str) -> tuple[int, ...]:
    match = SUMMARY.search(stdout)
    assert match, stdout
    return tuple(int(g) for g in match.groups())


def _count(store: Path, table: str) -> int:
    if not store.exists():
        return 0
    db = sqlite3.connect(store, timeout=30)
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        db.close()


def test_shipped_configs_expand_to_valid_units() -> None:
    small = load_config("small")
    assert len(small.units) == 12 and {u.plan.threat.cli_name for u in small.units} == {"linf", "l2", "corruptions"}
    assert {u.plan.n_examples for u in small.units if not u.plan.threat.is_norm_bounded} == {100}
    paper = load_config("paper")
    assert len(paper.units) == 3 * 3 * 3 * 3 * 2
    assert {u.plan.seed for u in paper.units} == {42, 43, 44}
    assert {u.plan.dataset for u in paper.units} == {"cifar10", "cifar100", "imagenet"}
    assert all(u.plan.n_examples == 1000 and (u.plan.final_attack is None or u.plan.final_attack.name == "autoattack")
               for u in paper.units)


@pytest.mark.parametrize("text,needle", [
    ("[[grid]]\nmodels=['smallcnn']\nn_exampels=3\n", "Unknown option in"),
    ("[defaults]\nn_examples='many'\n[[grid]]\nmodels=['smallcnn']\n", "expected n_examples to be an integer"),
    ("[defaults]\nn_examples=10\n", "has no [[grid]] block"),
    ("[[grid]]\nmodels=['smallcnn']\nthreats=['linf']\nbetas='1.5'\n", "beta"),
    ("this is = = not toml", "is not valid TOML"),
])
def test_bad_configs_are_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    assert_one_line_error(run_cli("reproduce", "--config", str(path), "--no-progress"), needle)


def test_unknown_config_is_one_line_error() -> None:
    assert_one_line_error(run_cli("reproduce", "--config", "no-such-grid"), "shipped configs")


@pytest.mark.slow
def test_kill_9_midway_then_resume_gives_the_uninterrupted_table(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    # Uninterrupted reference run, then a second start that must find everything stored.
    ref_store, ref_out = tmp_path / "ref.sqlite", tmp_path / "ref"
    proc = run_cli("reproduce", "--config", str(config), "--store", str(ref_store), "--out", str(ref_out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert _summary(proc.stdout)[:2] == (UNITS, 0)
    total_cells = _count(ref_store, "cells")
    again = run_cli("reproduce", "--config", str(config), "--store", str(ref_store), "--out", str(tmp_path / "again"),
                    "--no-progress")
    assert _summary(again.stdout) == (0, UNITS, 0, 0)
    assert _count(ref_store, "cells") == total_cells

    # Interrupted run: kill -9 once some cells are stored, then start it again.
    store, out = tmp_path / "killed.sqlite", tmp_path / "killed"
    args = [sys.executable, "-m", "ctrobust.cli.main", "reproduce", "--config", str(config), "--store", str(store),
            "--out", str(out), "--no-progress"]
    victim = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ})
    deadline = time.monotonic() + 600
    while _count(store, "cells") < total_cells // 2 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    stored_cells, stored_runs = _count(store, "cells"), _count(store, "runs")
    assert victim.returncode == -signal.SIGKILL
    assert 0 < stored_cells < total_cells, "the kill must land midway"
    resumed = run_cli("reproduce", "--config", str(config), "--store", str(store), "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    made, already, computed, _reused = _summary(resumed.stdout)
    assert already == stored_runs and made == UNITS - stored_runs
    assert computed == total_cells - stored_cells  # nothing stored was computed again
    assert _count(store, "cells") == total_cells and _count(store, "runs") == UNITS  # nothing lost or duplicated
    assert (out / "table.csv").read_text() == (ref_out / "table.csv").read_text()
    assert (out / "table.md").read_text() == (ref_out / "table.md").read_text()
    # runs.csv names the command that made each run, whether it was made now or found in the store.
    for folder in (ref_out, tmp_path / "again", out):
        rows = list(csv.DictReader((folder / "runs.csv").open()))
        assert len(rows) == UNITS and all(r["command"].startswith("ctrobust reproduce --config") for r in rows), folder
        assert all(int(r["n"]) > 0 and r["run_id"] for r in rows)
