"""ctrobust works from its built wheel in a clean virtual environment: the sdist and wheel build from the
tracked files alone, the wheel carries the weights, templates and configs, and the installed package (not the
checkout) answers --version, lists its models, runs a tiny eval and the README's Python blocks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ctrobust
from conftest import REPO

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 1200) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh venv's bin folder, a work folder outside the checkout) with the built wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    tracked = _run("git", "ls-files", "-z", cwd=REPO).split("\0")
    for name in filter(None, tracked):  # exactly what a clone holds
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    dist = root / "dist"
    _run(sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", dist, cwd=source)
    wheel = next(dist.glob("ctrobust-*.whl"))
    assert wheel.name.startswith(f"ctrobust-{ctrobust.__version__}-")
    assert next(dist.glob(f"ctrobust-{ctrobust.__version__}.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("ctrobust/models/weights/smallcnn_fashion-mnist.pt", "ctrobust/report/templates/report.html.j2",
                   "ctrobust/report/templates/style.css", "ctrobust/configs/small.toml",
                   "ctrobust/models/zoo_ct_audit.csv"):
        assert needed in names, f"the wheel lacks {needed}"
    pins = root / "constraints.txt"  # the dependencies at the versions this checkout's environment has
    frozen = _run(sys.executable, "-m", "pip", "freeze", "--exclude-editable", cwd=root)
    pins.write_text("\n".join(line for line in frozen.splitlines() if not line.lower().startswith("ctrobust")))
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=root)
    _run(venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", "-c", pins, wheel, cwd=root)
    work = root / "work"
    work.mkdir()
    return venv / "bin", work


def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "CTROBUST_CTU": "eager", "CTROBUST_STORE": str(work / "s.sqlite"), "PYTHONPATH": ""}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    where = _run(bin_dir / "python", "-c", "import ctrobust; print(ctrobust.__file__)", cwd=work, env=_env(work))
    assert "site-packages" in where and str(REPO) not in where
    assert _run(bin_dir / "ctrobust", "--version", cwd=work).strip() == f"ctrobust {ctrobust.__version__}"
    assert "smallcnn" in _run(bin_dir / "ctrobust", "models", cwd=work, env=_env(work))


def test_a_tiny_eval_runs_from_the_wheel_and_records_its_version(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    _run(bin_dir / "ctrobust", "eval", "--model", "smallcnn", "--n-examples", "10", "--n-select", "10", "--betas",
         "0.9", "--attack", "apgd-ce", "--steps", "2", "--select-steps", "2", "--no-progress", "--out", work / "out",
         cwd=work, env=_env(work))
    result = json.loads((work / "out" / "result.json").read_text())
    assert result["provenance"]["versions"]["ctrobust"] == ctrobust.__version__
    assert result["base"]["n"] == 10


def test_the_readme_python_blocks_run_from_the_wheel(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    outputs = [_run(bin_dir / "python", "-c", block, cwd=work, env=_env(work)) for block in blocks]
    assert "CTCoverage(" in outputs[0]  # the CT block
    assert any("gain_points" in out for out in outputs)  # ctrobust.run's block prints the runs' gains
