"""A responsive command line: --help without heavy imports, quiet on a closed pipe, helpful names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, run_cli

HEAVY = ("torch", "torchvision", "robustbench", "pyautoattack", "numpy", "matplotlib", "ray")
SUBCOMMANDS = ["", "eval", "reproduce", "report", "leaderboard", "train", "models", "audit-ct"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_imports_nothing_heavy(command: str) -> None:
    """`ctrobust [COMMAND] --help` must not import torch and friends (they cost seconds to load)."""
    argv = [c for c in (command, "--help") if c]
    probe = (
        "import sys\n"
        "from ctrobust.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-500:]
    assert "usage: ctrobust" in proc.stdout


def test_closed_pipe_ends_quietly() -> None:
    """`ctrobust models | head`: the reader goes away; no traceback, SIGPIPE's exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "ctrobust.cli.main", "models"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert err == ""


def test_unknown_model_suggests_zoo_names() -> None:
    proc = run_cli("eval", "--model", "Standrd", "--no-progress")
    assert_one_line_error(proc, "Unknown model 'Standrd'", "Did you mean 'Standard'", "smallcnn")


def test_missing_zoo_checkpoint_says_where_it_comes_from(tmp_path) -> None:
    proc = run_cli("eval", "--model", "Carmon2019Unlabeled", "--n-examples", "10", "--n-select", "10",
                   "--no-progress", env={"CTROBUST_OFFLINE": "1", "CTROBUST_MODEL_DIR": str(tmp_path)})
    assert_one_line_error(proc, "https://drive.google.com/uc?id=", "robustbench.github.io",
                          str(tmp_path / "cifar10" / "Linf" / "Carmon2019Unlabeled.pt"))


CHATTY_MODEL = '''
print("loading my model")
from ctrobust.models import load_model


def build():
    print("building it")
    return load_model("smallcnn").model
'''


@pytest.mark.slow
def test_json_stdout_is_the_json_alone_when_the_model_prints(tmp_path: Path) -> None:
    """Under --json, what user code prints (on import, in its factory) goes to stderr: stdout parses as JSON."""
    src = tmp_path / "chatty.py"
    src.write_text(CHATTY_MODEL)
    proc = run_cli("eval", "--model", f"{src}:build", "--dataset", "fashion-mnist", "--n-examples", "10",
                   "--n-select", "10", "--betas", "0.9", "--no-base-candidate", "--attack", "apgd-ce", "--steps", "2",
                   "--select-steps", "2", "--check-budget", "0", "--json", "--no-progress",
                   "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["n_examples"] == 10
    assert "loading my model" in proc.stderr and "building it" in proc.stderr
