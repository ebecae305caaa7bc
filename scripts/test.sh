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
# One pytest-xdist worker per core, each running torch (and the commands its tests start) on its share of the
# cores (tests/conftest.py): most tests are small, their time Python's and the processes', and two 1-thread
# workers finish the suite in about two thirds of one 2-thread process's time on this project's 2-core CI.
# Files whose tests share a module-scoped run stay on one worker (--dist loadgroup, their xdist_group mark).
# The fast tier alone: scripts/test.sh -m "not slow".
exec .venv/bin/python -m pytest -q -n auto --dist loadgroup "$@"
