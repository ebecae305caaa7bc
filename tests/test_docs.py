"""The documentation site builds with warnings as errors (a broken link, a missing anchor or an API name that
no longer exists fails here), and its API reference is generated from the code's docstrings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_docs_site_builds_strictly_from_the_code(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    for name in ("run_plan", "OptionTypeError", "forest_plot", "curvature_tuned", "RunResult"):
        assert name in api, f"the API reference lacks {name}"
    assert "Sequence[float]" in api  # ctrobust.run's option list, made from the code at import
    pages = {p.relative_to(site).parts[0] for p in site.glob("*/index.html")}
    assert {"protocol", "results", "architecture", "extending", "api"} <= pages


def test_the_architecture_pages_name_only_modules_that_exist() -> None:
    """docs/architecture.md and docs/extending.md are written from the layout: every module, package or file
    they name in backticks (``stages/sweep.py``, ``results/store/``, ``api.py``) is there, and ``run_eval`` is
    as short as the page says."""
    import ast
    import re

    package = REPO / "ctrobust"
    for page in ("architecture.md", "extending.md"):
        text = (REPO / "docs" / page).read_text()
        for name in re.findall(r"`(?:ctrobust/)?([a-z_]+(?:/[a-z_]+)*(?:\.py|/))(?:[:`])", text):
            found = (package / name).exists() or (REPO / name).exists() or (
                "/" not in name.rstrip("/") and any(package.rglob(name.rstrip("/"))))  # a file of a package named above
            assert found, f"{page} names {name}, which does not exist"
    tree = ast.parse((package / "stages" / "pipeline.py").read_text())
    run_eval = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_eval")
    lines = run_eval.end_lineno - run_eval.lineno + 1
    assert f"the protocol in {lines} lines" in (REPO / "docs" / "architecture.md").read_text()
