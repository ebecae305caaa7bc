"""``report`` and ``leaderboard`` on a store filled by real runs, checked in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli

# its module-scoped fixture is built once: pytest-xdist keeps this file's tests on one worker
pytestmark = pytest.mark.xdist_group("test_report")

EVIL = "<script>alert(1)"
MODEL_SRC = """
from ctrobust.models import load_model

def build():
    return load_model("smallcnn", "fashion-mnist").model
"""


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs: a model whose name holds '<script>' under AutoAttack, and a corruption run."""
    root = tmp_path_factory.mktemp("report")
    store = root / "store.sqlite"
    model_dir = root / EVIL
    model_dir.mkdir()
    (model_dir / "net.py").write_text(MODEL_SRC)
    env = {"CTROBUST_STORE": str(store)}
    proc = run_cli("eval", "--model", f"{model_dir / 'net.py'}:build", "--dataset", "fashion-mnist", "--threat", "linf",
                   "--n-examples", "12", "--n-select", "12", "--betas", "0.8,0.9", "--select-steps", "5",
                   "--out", str(root / "r1"), "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("eval", "--model", "smallcnn", "--threat", "corruptions", "--corruptions", "fog,contrast",
                   "--severities", "1,5", "--n-examples", "20", "--n-select", "20", "--betas", "0.8,0.9",
                   "--data-dir", str(root / "data"), "--out", str(root / "r2"), "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    return store


@pytest.fixture(scope="module")
def report_dir(filled_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    proc = run_cli("report", "--store", str(filled_store), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_report_files_and_tables(report_dir: Path) -> None:
    summary = list(csv.DictReader((report_dir / "summary.csv").open()))
    assert [r["threat"] for r in summary] == ["Linf", "corruptions"]
    for row in summary:
        for variant in ("base", "ct"):
            low, acc, high = (float(row[f"{variant}_robust_accuracy{s}"]) for s in ("_low", "", "_high"))
            assert low <= acc <= high
        assert 0.0 <= float(row["mcnemar_p"]) <= 1.0
    csvs = {p.name.split("-", 1)[1] for p in (report_dir / "csv").iterdir()}
    autoattack = next(p for p in (report_dir / "csv").iterdir() if p.name.endswith("-autoattack.csv"))
    steps = [r["attack"] for r in csv.DictReader(autoattack.open())]
    assert steps == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    grid = next(p for p in (report_dir / "csv").iterdir() if p.name.endswith("-corruptions.csv"))
    rows = list(csv.DictReader(grid.open()))
    assert {r["corruption"] for r in rows} == {"fog", "contrast"}
    assert set(rows[0]) == {"corruption", "severity_1", "severity_5"}
    assert any(name.endswith("-beta.csv") for name in csvs)


@pytest.mark.slow
def test_user_strings_are_escaped_and_file_names_sanitised(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)" in html
    assert all("<" not in p.name and ">" not in p.name for p in report_dir.rglob("*"))
    assert "http://" not in html and "https://" not in html  # nothing fetched from the network


def _png_dpi(path: Path) -> float:
    """The resolution a PNG declares (its pHYs chunk, pixels per metre)."""
    data = path.read_bytes()
    at = data.index(b"pHYs")
    return int.from_bytes(data[at + 4 : at + 8], "big") * 0.0254


def _browser():  # type: ignore[no-untyped-def]
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (scripts/setup.sh --test installs them)")
        pytest.skip("chromium/chromedriver not installed: run `bash scripts/setup.sh --test`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.binary_location = chromium
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report_dir: Path) -> None:
    browser = _browser()
    try:
        browser.get((report_dir / "index.html").as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        tables = browser.execute_script(
            "return Array.from(document.querySelectorAll('table')).map(t => [t.id || t.className, t.rows.length])")
        alerts = browser.execute_script("return typeof window.alert")  # page ran no injected script
        title = browser.title
    finally:
        browser.quit()
    assert title == "ctrobust report"
    assert len(images) == 4  # the gains' forest plot, the beta figure x 2 runs, one corruption grid
    assert all(complete and width > 0 for _, complete, width in images), images
    for src, _, _ in images:  # every figure also as a vector PDF beside its 300-dpi PNG
        png = report_dir / src
        assert png.suffix == ".png" and png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        assert _png_dpi(png) == pytest.approx(300, abs=1)
    names = dict(tables)
    assert names["summary-table"] == 3 and names["paper-table-rows"] == 3  # header + 2 rows each
    assert names["breakdown"] == 6 and names["corruption-grid"] == 3
    assert alerts == "function"


@pytest.mark.slow
def test_leaderboard_entries_and_pages(filled_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "leaderboards"
    stale = out / "fashion-mnist" / "l2" / "stale-model.json"  # a broken file left in the folder
    stale.parent.mkdir(parents=True)
    stale.write_text("{not json")
    proc = run_cli("leaderboard", "--store", str(filled_store), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    stale.unlink()  # the pages come from the store: the stale file is neither read nor ranked
    assert "stale-model" not in (out / "index.html").read_text() + (out / "README.md").read_text()
    entries = sorted(out.glob("*/*/*.json"))
    assert [p.relative_to(out).parts[:2] for p in entries] == [("fashion-mnist", "corruptions"), ("fashion-mnist", "linf")]
    linf = json.loads(entries[1].read_text())
    assert linf["name"].endswith("net.py:build") and EVIL in linf["name"]
    assert linf["autoattack_acc"] == linf["robust_acc"] and linf["protocol"] == "heldout"
    assert linf["gain"] == pytest.approx(linf["ct_robust_acc"] - linf["robust_acc"], abs=0.011)
    assert linf["commands"][0].startswith("ctrobust eval --model")
    assert linf["architecture"] == "SmallCNN" and linf["model_source"] == "custom" and linf["link"] is None
    corr = json.loads(entries[0].read_text())
    assert corr["corruptions_acc"] == corr["robust_acc"] and "autoattack_acc" not in corr
    html = (out / "index.html").read_text()
    assert "&lt;script&gt;" in html and EVIL not in html  # the model's name is escaped; the page's own script sorts
    assert "gain (pts) [95% CI]" in html and "base robust %" in html and "CT robust %" in html
    assert "## fashion-mnist / Linf" in (out / "README.md").read_text()


@pytest.mark.slow
def test_leaderboard_page_sorts_in_headless_chromium(filled_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "lb"
    assert run_cli("leaderboard", "--store", str(filled_store), "--out", str(out)).returncode == 0
    browser = _browser()
    try:
        browser.get((out / "index.html").as_uri())
        browser.execute_script(
            "document.querySelectorAll('table.leaderboard th.sortable')[9].click()")  # base robust %
        order = browser.execute_script(
            "return document.querySelectorAll('table.leaderboard th.sortable')[9].dataset.order")
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        links = browser.execute_script("return document.querySelectorAll('a').length")
    finally:
        browser.quit()
    assert order == "desc" and errors == [], errors
    assert links == 0  # custom models have no page to link to; zoo and paper models link theirs


@pytest.mark.slow
def test_report_with_an_unwritable_home_says_nothing_and_leaves_nothing(filled_store: Path, tmp_path: Path) -> None:
    """Issue 37 item 9: matplotlib's config folder goes to a temporary folder of ctrobust's own, removed at exit
    (HOME=/dev/null: no folder can be made under it, as for a read-only home)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"HOME": "/dev/null", "TMPDIR": str(temp), "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": "", "MPLCONFIGDIR": ""}
    proc = run_cli("report", "--store", str(filled_store), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib" not in proc.stderr.lower(), proc.stderr
    assert list(temp.iterdir()) == []
    assert (tmp_path / "out" / "index.html").is_file()
