"""Full-page screenshot of an HTML file in headless Chromium (Selenium), at a given width: how the committed
report, leaderboard and executed notebook are shown as a reader sees them.

    .venv/bin/python benchmarks/page_screenshot.py reports/acceptance/report_small/index.html \
        reports/acceptance/report_small/index.png

Needs chromium and chromedriver on PATH (apt install chromium chromium-driver) and selenium (pip).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def screenshot(html: Path, png: Path, width: int = 1300) -> None:
    """The whole page, `width` px wide; the height follows the page (up to 12000 px)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.set_window_size(width, 1000)
        driver.get(html.resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(height) + 100, 12000))
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1300)
    args = parser.parse_args()
    if not args.html.is_file():
        parser.error(f"no such file: {args.html}")
    screenshot(args.html, args.png, args.width)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
