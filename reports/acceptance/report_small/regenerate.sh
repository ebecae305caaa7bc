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
