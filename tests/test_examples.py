"""The example notebooks run top to bottom (at tiny sizes, CTROBUST_EXAMPLES=tiny) in a real Jupyter kernel,
and show what they promise: the result's table and the figure inline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import REPO

NOTEBOOKS = sorted((REPO / "examples").glob("*.ipynb"))


def execute(path: Path, workdir: Path) -> object:
    """The notebook executed in ``workdir`` (its files land there), as nbformat's NotebookNode."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    os.environ["CTROBUST_EXAMPLES"] = "tiny"
    try:
        NotebookClient(book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        os.environ.pop("CTROBUST_EXAMPLES", None)
    return book


def test_the_three_examples_exist_and_the_readme_links_them() -> None:
    assert [p.name for p in NOTEBOOKS] == ["quickstart.ipynb", "reproduce_small.ipynb", "your_model.ipynb"]
    readme = (REPO / "README.md").read_text()
    assert all(f"examples/{p.name}" in readme for p in NOTEBOOKS)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute(path, tmp_path)
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]  # type: ignore[attr-defined]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    kinds = {key for o in outputs for key in o.get("data", {})}
    html = "".join(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    if path.stem == "reproduce_small":
        assert "base_robust_mean" in html  # the paper's table as a DataFrame
    else:
        assert "ctrobust run" in html and "McNemar p" in html  # a RunResult's own table
        assert "image/png" in kinds  # the figure, inline
