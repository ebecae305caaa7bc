"""``reproduce --executor ray`` on a local Ray cluster started by the tests (2 CPUs)."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from conftest import TINY_GRID as TINY
from conftest import TINY_GRID_UNITS as UNITS
from ctrobust.cli.main import main

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_ray_executor")

if os.environ.get("CI"):
    import ray  # CI installs the test extra, Ray included: a missing Ray is a failure there
else:
    ray = pytest.importorskip("ray")



@pytest.fixture(scope="module")
def cluster() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"CTROBUST_CTU": "eager"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def local_table(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    root = tmp_path_factory.mktemp("local")
    proc = run_cli("reproduce", "--config", str(tiny_config), "--store", str(root / "s.sqlite"), "--out", str(root),
                   "--no-progress", env={"CTROBUST_CTU": "eager"})
    assert proc.returncode == 0, proc.stderr
    return (root / "table.csv").read_text(), _count(root / "s.sqlite", "cells")


def _count(store: Path, table: str) -> int:
    db = sqlite3.connect(store, timeout=30)
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def _reproduce(config: Path, store: Path, out: Path) -> int:
    return main(["reproduce", "--config", str(config), "--store", str(store), "--out", str(out), "--executor", "ray",
                 "--no-progress"])


# The shipped small config's grid (Linf, L2 and corruptions; seeds 42-43; both protocols: 12 units) at
# sizes that keep CI short; the shipped config itself is run in full by reports/acceptance/.
SMALL_GRID_TINY = (REPO / "ctrobust" / "configs" / "small.toml").read_text().replace(
    "n_examples = 200", "n_examples = 24").replace("n_select = 200", "n_select = 24").replace(
    "n_examples = 100", "n_examples = 16").replace("n_select = 100", "n_select = 16").replace(
    '"0.70:0.95:0.05"', '"0.8,0.9"').replace("steps = 20", "steps = 3").replace("select_steps = 10", "select_steps = 2")\
    .replace('"gaussian_noise,defocus_blur,fog,contrast,jpeg_compression"', '"fog,contrast"').replace('"1-5"', '"1,5"')


@pytest.mark.slow
def test_ray_runs_the_small_grid_to_the_local_table(cluster: None, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped offline config's grid (12 units: Linf, L2, corruptions; seeds 42-43; both protocols)."""
    config = tmp_path / "small_tiny.toml"
    config.write_text(SMALL_GRID_TINY)
    assert "n_examples = 24" in SMALL_GRID_TINY and '"fog,contrast"' in SMALL_GRID_TINY  # the shrinking took
    local = tmp_path / "local"
    env = {"CTROBUST_CTU": "eager"}
    proc = run_cli("reproduce", "--config", str(config), "--store", str(local / "s.sqlite"), "--out", str(local),
                   "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    store = tmp_path / "ray.sqlite"
    assert main(["reproduce", "--config", str(config), "--store", str(store), "--out", str(tmp_path / "ray"),
                 "--executor", "ray", "--no-progress"]) == 0
    assert (tmp_path / "ray" / "table.csv").read_text() == (local / "table.csv").read_text()
    assert _count(store, "cells") == _count(local / "s.sqlite", "cells")  # every cell came back to the driver
    assert main(["reproduce", "--config", str(config), "--store", str(store), "--out", str(tmp_path / "ray"),
                 "--executor", "ray", "--no-progress"]) == 0
    assert "0 runs made, 12 already stored" in capsys.readouterr().out  # stored units are not submitted again


def _running_worker_pid(deadline: float) -> int | None:
    """A Ray worker process busy with a unit: Ray titles it 'ray::evaluate_unit' while the task runs."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::evaluate_unit"):
                return int(proc.name)
        time.sleep(0.1)
    return None


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_every_unit_stored_once(cluster: None, tiny_config: Path,
                                                               local_table: tuple[str, int], tmp_path: Path) -> None:
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(_reproduce(tiny_config, tmp_path / "s.sqlite", tmp_path)))
    runner.start()
    pid = _running_worker_pid(time.monotonic() + 300)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    runner.join(600)
    assert pid is not None, "no running task to kill"
    assert codes == [0]
    assert _count(tmp_path / "s.sqlite", "runs") == UNITS
    assert _count(tmp_path / "s.sqlite", "cells") == local_table[1]
    assert _count(tmp_path / "s.sqlite", "failures") == 0
    assert (tmp_path / "table.csv").read_text() == local_table[0]


@pytest.mark.slow
def test_an_unfixable_unit_fails_once_and_the_others_go_on(cluster: None, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "grid.toml"
    config.write_text(TINY.replace('models = ["smallcnn"]', 'models = ["smallcnn", "paper:resnet18"]')
                      .replace('threats = ["linf", "l2"]', 'threats = ["linf"]')
                      .replace('protocols = ["heldout", "paper"]', 'protocols = ["heldout"]'))
    code = main(["reproduce", "--config", str(config), "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path),
                 "--executor", "ray", "--model-dir", str(tmp_path / "models"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unit paper:resnet18 fashion-mnist linf seed 1 heldout failed" in err and "ctrobust train" in err
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*), MIN(executor) FROM failures").fetchone() == (1, "ray")


def test_without_ray_the_error_says_how_to_install(tmp_path: Path, tiny_config: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["reproduce", "--config", str(tiny_config), "--store", str(tmp_path / "s.sqlite"),
                 "--out", str(tmp_path), "--executor", "ray", "--no-progress"])
    assert code == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
