"""scripts/setup.sh on a "fresh machine": stub apt-get, sudo, id and python on PATH record every call.

The install branch only runs where the data package is missing, so CI on a machine that has it would
never reach it; here the package is reported missing through the same environment override ctrobust
reads (CTROBUST_FASHION_MNIST_SYSTEM_DIR), and nothing is installed for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

# Real tools the script needs besides the stubs; PATH holds only these and the stubs, so a `sudo`
# elsewhere on the machine cannot leak in.
REAL_TOOLS = ("bash", "dirname", "env", "grep", "tail", "cat", "mkdir", "chmod", "touch", "printf")

RECORDER = """#!/bin/bash
printf '%s DEBIAN_FRONTEND=%s %s\\n' "$(basename "$0")" "${DEBIAN_FRONTEND:-}" "$*" >> "$CALLS"
"""
SUDO = RECORDER + 'exec "$@"\n'
ID = '#!/bin/bash\n[ "$1" = "-u" ] && echo "$FAKE_UID" && exit 0\necho "uid=$FAKE_UID"\n'
# `python -m venv .venv` makes a venv whose python and pip only record their arguments.
PYTHON = RECORDER + """if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  for tool in python pip; do printf '%s' "$RECORDER_SCRIPT" > "$3/bin/$tool"; chmod +x "$3/bin/$tool"; done
fi
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture()
def fresh_machine(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the script in an empty checkout, a PATH of stubs, and the environment to run it in."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", checkout / "scripts" / "setup.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "basename").symlink_to(shutil.which("basename") or "/usr/bin/basename")
    _write(bin_dir / "apt-get", RECORDER)
    _write(bin_dir / "sudo", SUDO)
    _write(bin_dir / "id", ID)
    _write(bin_dir / "python3.11", PYTHON)
    calls = tmp_path / "calls.txt"
    calls.touch()
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "RECORDER_SCRIPT": RECORDER,
        "FAKE_UID": "0",
        "CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(tmp_path / "no-such-package"),
    }
    return checkout, calls, env


def _run(checkout: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run([bash, str(checkout / "scripts" / "setup.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_root_installs_missing_data_package_without_sudo(fresh_machine) -> None:
    checkout, calls, env = fresh_machine
    proc = _run(checkout, env)
    assert proc.returncode == 0, proc.stderr
    lines = _calls(calls)
    assert lines[0] == "apt-get DEBIAN_FRONTEND=noninteractive update -qq"
    assert lines[1] == "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq dataset-fashion-mnist"
    assert not any(line.startswith("sudo") for line in lines)
    # Then the venv: created, torch pinned first, the package itself, an import check.
    assert "python3.11 DEBIAN_FRONTEND= -m venv .venv" in lines
    pip = [line for line in lines if line.startswith("pip ")]
    assert "torch==2.14.1 torchvision==0.29.1" in pip[0]
    assert pip[1].endswith("-e .")
    assert lines[-1].startswith("python DEBIAN_FRONTEND= -c import ctrobust")


def test_sudo_user_installs_through_sudo(fresh_machine) -> None:
    checkout, calls, env = fresh_machine
    proc = _run(checkout, {**env, "FAKE_UID": "1000"})
    assert proc.returncode == 0, proc.stderr
    lines = _calls(calls)
    assert lines[0] == "sudo DEBIAN_FRONTEND= env DEBIAN_FRONTEND=noninteractive apt-get update -qq"
    assert lines[1] == "apt-get DEBIAN_FRONTEND=noninteractive update -qq"
    assert lines[2] == (
        "sudo DEBIAN_FRONTEND= env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist")
    assert lines[3] == "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq dataset-fashion-mnist"


def test_test_mode_adds_browser_and_linter(fresh_machine) -> None:
    checkout, calls, env = fresh_machine
    proc = _run(checkout, env, "--test")
    assert proc.returncode == 0, proc.stderr
    install = [line for line in _calls(calls) if " install -y" in line]
    assert install == ["apt-get DEBIAN_FRONTEND=noninteractive install -y -qq "
                       "dataset-fashion-mnist chromium chromium-driver shellcheck"]
    assert any(line.startswith("pip ") and line.endswith("-e .[test]") for line in _calls(calls))


def test_nothing_installed_when_data_present(fresh_machine, tmp_path: Path) -> None:
    checkout, calls, env = fresh_machine
    data = tmp_path / "data"
    data.mkdir()
    (data / "t10k-images-idx3-ubyte.gz").touch()
    proc = _run(checkout, {**env, "CTROBUST_FASHION_MNIST_SYSTEM_DIR": str(data)})
    assert proc.returncode == 0, proc.stderr
    assert not any(line.startswith(("apt-get", "sudo")) for line in _calls(calls))


def test_user_without_sudo_gets_one_line(fresh_machine) -> None:
    checkout, calls, env = fresh_machine
    os.remove(Path(env["PATH"]) / "sudo")
    proc = _run(checkout, {**env, "FAKE_UID": "1000"})
    assert proc.returncode == 1
    assert proc.stderr.strip() == "setup: need root or sudo to install Debian packages: dataset-fashion-mnist"
    assert _calls(calls) == []


@pytest.mark.skipif(shutil.which("shellcheck") is None and os.environ.get("CI") != "true",
                    reason="shellcheck not installed (scripts/setup.sh --test installs it)")
def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in (REPO / "scripts").glob("*.sh")) + [str(REPO / ".ci" / "run")]
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
