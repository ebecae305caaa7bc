#!/usr/bin/env bash
# Remake the committed report (this folder) and leaderboards (leaderboards/) from the runs of grid.toml, on a
# store of their own; every number in them comes from this run. Usage, from anywhere:
#   bash reports/acceptance/report_small/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=reports/acceptance/report_small
STORE=reports/report_small.sqlite  # git-ignored; a second run reuses its cells
bash scripts/setup.sh
.venv/bin/ctrobust reproduce --config "$HERE/grid.toml" --store "$STORE" --out "$HERE" --no-progress
rm -rf "$HERE/figures" "$HERE/csv"
.venv/bin/ctrobust report --store "$STORE" --out "$HERE" -q
rm -rf leaderboards/fashion-mnist
.venv/bin/ctrobust leaderboard --store "$STORE" --out leaderboards -q
# What a reader sees, at 1300 px (needs chromium, chromedriver and selenium; skipped where they are missing).
if command -v chromium >/dev/null && command -v chromedriver >/dev/null && .venv/bin/python -c "import selenium" 2>/dev/null; then
  mkdir -p "$HERE/screenshots"
  .venv/bin/python benchmarks/page_screenshot.py "$HERE/index.html" "$HERE/screenshots/report.png"
  .venv/bin/python benchmarks/page_screenshot.py leaderboards/index.html "$HERE/screenshots/leaderboard.png"
else
  echo "no screenshots: chromium, chromedriver or selenium is missing" >&2
fi
