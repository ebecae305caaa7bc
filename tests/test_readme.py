"""The README runs as written: every Python block, and every command of its Usage section at tiny sizes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
TINY_EVAL = {"--n-examples": "20", "--n-select": "20", "--steps": "2", "--select-steps": "2", "--restarts": "1"}


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _usage_commands() -> list[str]:
    section = README.split("\n## Usage", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in _blocks(section, "bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("ctrobust "):
                commands.append(line)
    return commands


def _tiny(command: str, tmp_path: Path) -> str:
    """The same command with sizes cut down: the options it sets are made small, and so are the defaults."""
    head, _, redirect = command.partition(">")
    words = shlex.split(head)
    if words[1] == "train":
        words += ["--max-batches", "2", "--out", str(tmp_path / "trained.pt")]
    elif words[1] == "eval":
        for i, word in enumerate(words[:-1]):
            if word in TINY_EVAL:
                words[i + 1] = TINY_EVAL[word]
        for option in ("--n-examples", "--n-select", "--select-steps"):
            if option not in words:
                words += [option, TINY_EVAL[option]]
        if "--attack" not in words:
            words += ["--attack", "apgd-ce", "--steps", "2"]
        if "--betas" not in words:
            words += ["--betas", "0.9"]
    words.append("--no-progress")
    return shlex.join(words) + (f" > {shlex.quote(redirect.strip())}" if redirect else "")


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_usage_section_has_commands() -> None:
    commands = _usage_commands()
    assert len(commands) >= 5
    assert any(c.startswith("ctrobust train") for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("command", _usage_commands())
def test_usage_command_runs(command: str, tmp_path: Path) -> None:
    tiny = _tiny(command, tmp_path)
    proc = subprocess.run(["bash", "-c", tiny], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{tiny}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    if ">" in command:  # --json > result.json: the file is the run's result
        target = tmp_path / command.split(">", 1)[1].strip()
        assert '"robust_accuracy"' in target.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_blocks(README, "python"))))
def test_python_block_runs(index: int, tmp_path: Path) -> None:
    code = _blocks(README, "python")[index]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
