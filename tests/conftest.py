"""Shared fixtures: a small real Fashion-MNIST subset and a CLI runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ctrobust.data import load_test_set

REPO = Path(__file__).resolve().parents[1]


def _share_the_cores() -> None:
    """Under pytest-xdist each worker takes its share of the cores, and so do the commands its tests start: torch's
    default (every core in every process) would run twice as many threads as cores on this project's 2-core CI."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


_share_the_cores()

# A reproduce grid of 8 small units (2 threats x 2 seeds x 2 protocols) that runs in seconds per unit.
TINY_GRID = """
name = "tiny"
[defaults]
n_examples = 30
n_select = 30
betas = "0.8,0.9"
attack = "apgd-ce"
steps = 5
select_steps = 3
[[grid]]
models = ["smallcnn"]
datasets = ["fashion-mnist"]
threats = ["linf", "l2"]
seeds = [1]
protocols = ["heldout", "paper"]
"""
TINY_GRID_UNITS = 4  # 2 threats x 1 seed x 2 protocols: enough for resume and executor tests, small for CI


@pytest.fixture(autouse=True)
def _private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test writes to its own results store, never to the repo's reports/.

    Tests also run the eager CT unit unless they ask for the fused one: compiling it costs 10-20 s
    per process, paid by every CLI test otherwise; tests/test_fused_ctu.py covers the fused unit.
    """
    path = tmp_path / "store.sqlite"
    monkeypatch.setenv("CTROBUST_STORE", str(path))
    monkeypatch.setenv("CTROBUST_CTU", "eager")
    return path


@pytest.fixture(scope="session")
def fmnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    return load_test_set("fashion-mnist")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``ctrobust`` entry point in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ctrobust.cli.main", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=900,
    )


def interruptible() -> None:
    """``preexec_fn`` for a command a test interrupts as a user's Ctrl-C would: SIGINT at its default, whatever the
    test process inherited (a shell's background job or a pytest-xdist worker may run with SIGINT ignored, and an
    ignored signal stays ignored across exec, so Python would never raise KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user error: exit 2, one line on stderr that starts with 'ctrobust: error:', no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ctrobust: error:")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]
