"""ctrobust works from its built wheel in a clean virtual environment: the sdist and wheel build from the
tracked files alone, the wheel carries the weights, templates and configs, and the installed package (not the
checkout) answers --version, lists its models, runs a tiny eval and the README's Python blocks.

The clean environment holds the wheel and exactly the closure of its declared dependencies (and nothing else
of this checkout's environment), linked from this environment at its versions rather than unpacked again: a
dependency the package imports but does not declare is missing there, as in a fresh install, without the
minute that copying torch costs."""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import ctrobust
from conftest import REPO

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_wheel")]


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
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                     cwd=root).strip())
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    declared = email.parser.Parser().parsestr(zipfile.ZipFile(wheel).read(metadata).decode()).get_all("Requires-Dist")
    for needed_dist in _dependency_closure([*(declared or []), "pip"]):  # pip: to install the wheel, and to check
        _link_into(needed_dist, site)
    pip = (venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "install", "-q", "--no-deps", wheel, cwd=root)
    _run(*pip, "check", cwd=root)  # every need declared by the wheel and its dependencies is met
    work = root / "work"
    work.mkdir()
    return venv / "bin", work


def _dependency_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that ``requirements`` need, transitively (markers and extras evaluated)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are queued
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        dist = importlib.metadata.distribution(req.name)  # PackageNotFoundError: a declared need is not installed
        assert req.specifier.contains(dist.version, prereleases=True), f"{req}, but {dist.version} is installed"
        key = canonicalize_name(req.name)
        found[key] = dist
        for wanted in sorted(req.extras) or [""]:
            if (key, wanted) not in seen:
                seen.add((key, wanted))
                todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return list(found.values())


def _link_into(dist: importlib.metadata.Distribution, site: Path) -> None:
    """Make ``dist`` importable from the site-packages folder ``site``: a link per top-level entry it installed."""
    root = Path(str(dist.locate_file("")))
    for top in {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
        if (root / top).exists() and not (site / top).exists():  # a shared namespace folder is linked once, whole
            (site / top).symlink_to(root / top)


def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "CTROBUST_CTU": "eager", "CTROBUST_STORE": str(work / "s.sqlite"), "PYTHONPATH": ""}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: tuple[Path, Path]) -> None:
    bin_dir, work = installed
    where = _run(bin_dir / "python", "-c", "import ctrobust; print(ctrobust.__file__)", cwd=work, env=_env(work))
    assert "site-packages" in where and str(REPO) not in where
    # only what the wheel declares is there: an undeclared import would fail as in a fresh install
    absent = "import importlib.util as u; print([m for m in ('ray', 'pytest', 'selenium') if u.find_spec(m)])"
    assert _run(bin_dir / "python", "-c", absent, cwd=work, env=_env(work)).strip() == "[]"
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
