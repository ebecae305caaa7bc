"""The results store (keys, dedup, concurrent writers, bad files) and the statistics in reports."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
from scipy.stats import binomtest

from conftest import assert_one_line_error, run_cli
from ctrobust.cell import Scored
from ctrobust.errors import CtrobustError
from ctrobust.identity import identity_key
from ctrobust.results.stats import mcnemar_exact, relative_improvement, wilson_interval
from ctrobust.results.store import Store, open_store


def _identity(beta: float, split: str = "eval", seed: int = 0) -> dict:
    return {"model": "m", "dataset": "d", "threat": "Linf", "eps": 0.1, "attack": {"name": "pgd"},
            "library_version": "x 1", "beta": beta, "split": split, "seed": seed, "n": 3}


def _cell(robust: list[int]) -> Scored:
    """A consistent cell of the identity's 3 points: every point clean, ``robust`` as given."""
    acc = sum(robust) / len(robust)
    return Scored({"clean": [1, 1, 1], "robust": robust}, {"robust_accuracy": acc})


def test_identity_key_ignores_order_but_not_values() -> None:
    a = _identity(0.9)
    assert identity_key(a) == identity_key(dict(reversed(list(a.items()))))
    assert identity_key(a) != identity_key(_identity(0.91))
    assert identity_key(a) != identity_key(_identity(0.9, split="select"))


def test_cells_are_stored_once_and_read_back(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        assert store.get_cell(_identity(0.9)) is None
        assert store.put_cell(_identity(0.9), _cell([1, 0, 1]), {"seconds": 1.0, "device": "cpu"})
        assert not store.put_cell(_identity(0.9), _cell([1, 1, 1]), {})  # second write of one identity is ignored
        hit = store.get_cell(_identity(0.9))
        assert hit is not None and hit.robust_accuracy == 2 / 3
        assert hit.per_example == {"clean": [1, 1, 1], "robust": [1, 0, 1]}
        assert store.count_cells() == 1
    with open_store(tmp_path / "s.sqlite") as again:  # survives closing
        assert again.count_cells() == 1


def _writer(path: str, seeds: list[int]) -> None:
    store = Store(Path(path))
    for seed in seeds:
        for k in range(25):
            store.put_cell(_identity(k / 100, seed=seed), _cell([k % 2, 1, 0]), {"device": "cpu"})
    store.close()


def test_two_processes_writing_one_store_do_not_corrupt_it(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    open_store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, seeds)) for seeds in ([0, 1, 2], [2, 3, 4])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 5 * 25  # seed 2 written by both, stored once


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CtrobustError, match="not a ctrobust store"):
        open_store(bad)
    assert bad.read_bytes() == b"this is not a database" * 100  # left untouched


def test_report_without_a_store_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("report", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "html"))
    assert_one_line_error(proc, "No results store at")
    assert not (tmp_path / "none.sqlite").exists()


def test_report_on_an_empty_store_is_one_line(tmp_path: Path) -> None:
    with open_store(tmp_path / "empty.sqlite") as store:
        assert store.count_cells() == 0  # the first use creates the (empty) store
    proc = run_cli("leaderboard", "--store", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "lb"))
    assert_one_line_error(proc, "No finished runs")


@pytest.mark.parametrize("correct,n", [(0, 10), (5, 10), (10, 10), (123, 1000)])
def test_wilson_interval_matches_the_closed_form(correct: int, n: int) -> None:
    low, high = wilson_interval(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    ref = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert low == pytest.approx(ref.low, abs=1e-9) and high == pytest.approx(ref.high, abs=1e-9)


def test_wilson_interval_known_value() -> None:
    """5 of 10: the textbook 95% Wilson interval is 0.2366 to 0.7634 (Newcombe 1998, Table I style)."""
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


def test_mcnemar_counts_discordant_pairs_and_matches_the_binomial_test() -> None:
    base = [1] * 30 + [0] * 10 + [1] * 5 + [0] * 55
    ct = [1] * 30 + [1] * 10 + [0] * 5 + [0] * 55
    result = mcnemar_exact(base, ct)
    assert (result.only_base, result.only_ct) == (5, 10)
    assert result.p_value == pytest.approx(binomtest(5, 15, 0.5).pvalue, rel=1e-12)
    assert mcnemar_exact(base, base).p_value == 1.0


def test_relative_improvement() -> None:
    assert relative_improvement(2.0, 3.0) == pytest.approx(50.0)
    assert relative_improvement(0.0, 3.0) is None
