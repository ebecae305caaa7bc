#!/usr/bin/env bash
# The README's test command: set up (if needed), run the static checks (lint and import order, types, the
# layering contracts of docs/architecture.md), then every test, slow ones included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "test: ruff (lint, import order)" >&2
.venv/bin/ruff check ctrobust tests benchmarks
echo "test: mypy (types of ctrobust/)" >&2
.venv/bin/mypy
echo "test: import-linter (the layering)" >&2
.venv/bin/lint-imports --no-cache
# One process: on these 2-core machines two pytest-xdist workers (each running torch on 2 threads) were no
# faster on the slow tests. For a quick local run of the fast tests: scripts/test.sh -m "not slow" -n 2.
exec .venv/bin/python -m pytest -q "$@"
