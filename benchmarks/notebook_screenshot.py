"""Execute examples/quickstart.ipynb at its default sizes, export it to HTML and take a full-page screenshot in
headless Chromium at 1300 px: the evidence that the notebook shows its result table and figure once run.

    .venv/bin/python benchmarks/notebook_screenshot.py --out reports/acceptance/quickstart_notebook

Writes quickstart.html (the executed notebook), quickstart.png (the screenshot) and run.json (command, seconds,
machine) under --out. The run itself is stored in <out>/quickstart.sqlite, which is git-ignored.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from page_screenshot import screenshot

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/acceptance/quickstart_notebook"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    book = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    start = time.perf_counter()
    NotebookClient(book, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(args.out)}}).execute()
    seconds = time.perf_counter() - start
    body, _ = HTMLExporter().from_notebook_node(book)
    html = args.out / "quickstart.html"
    html.write_text(body, encoding="utf-8")
    screenshot(html, args.out / "quickstart.png")
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "seconds": round(seconds, 1),
              "machine": f"{platform.machine()} {platform.processor()}".strip(), "python": platform.python_version()}
    (args.out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"executed in {seconds:.1f} s; wrote {html} and {args.out / 'quickstart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
